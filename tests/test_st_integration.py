"""polyir's samplers and LAReQA evaluation inside sentence-transformers' trainer (tiny model, tiny data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("datasets", reason="the sentence-transformers integration needs the datasets package")

import torch  # noqa: E402

from polyir.errors import DataFormatError  # noqa: E402
from polyir.integrations import (  # noqa: E402
    LareqaEvaluator,
    PolyirBatchSampler,
    RowColumns,
    corpus_to_rows,
    polyir_batch_sampler,
)
from polyir.sampling import CROSSLINGUAL, MONOLINGUAL, HybridBatchSampler, SamplerConfig  # noqa: E402

LANGS = ["en", "de", "es"]
BATCH = 4


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny LAReQA corpus (train) and task (test), and a tiny BERT knowing their words."""
    from polyir.data.registry import load_corpus, load_task
    from polyir.testing import build_tiny_lareqa_world

    world = build_tiny_lareqa_world(tmp_path_factory.mktemp("st"), LANGS, dropout=0.0)
    root, model_dir = world["root"], world["model"]
    corpus = load_corpus("mlqa-r", data_dir=root / "data", languages=LANGS, download=False)
    task = load_task("xquad-r", data_dir=root / "data", languages=LANGS, download=False)
    return {"root": root, "model_dir": model_dir, "corpus": corpus, "task": task}


def _st_model(tiny):
    from polyir.models.encoder import Encoder, EncoderSettings

    settings = EncoderSettings(query_prefix="query: ", passage_prefix="passage: ", query_max_length=12,
                               passage_max_length=24)
    return Encoder.from_transformers(tiny["model_dir"], settings, device="cpu").st


def _train(tiny, tmp_path: Path, steps: int, seed: int, **sampler):
    """Train ``steps`` steps through SentenceTransformerTrainer; return the (query, positive) rows of every
    batch the loss was given (recorded in the collator) and the model."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.data_collator import SentenceTransformerDataCollator
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    model = _st_model(tiny)
    seen: list[list[tuple[str, str]]] = []

    class Recording(SentenceTransformerDataCollator):
        def __call__(self, features):
            seen.append([(f["anchor"], f["positive"]) for f in features])
            return super().__call__(features)

    rows = corpus_to_rows(tiny["corpus"])
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "st"), max_steps=steps, per_device_train_batch_size=BATCH, learning_rate=1e-3,
        warmup_steps=0, seed=seed, use_cpu=True, save_strategy="no", report_to="none", logging_steps=1,
        disable_tqdm=True, batch_sampler=polyir_batch_sampler(**sampler), dataloader_num_workers=0,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=rows, loss=MultipleNegativesRankingLoss(model),
        data_collator=Recording(preprocess_fn=model.preprocess),
    )
    before = model[0].auto_model.encoder.layer[0].attention.self.query.weight.detach().clone()
    trainer.train()
    after = model[0].auto_model.encoder.layer[0].attention.self.query.weight.detach()
    return seen, rows, model, bool((before != after).any())


def test_trainer_trains_on_polyirs_hybrid_batches(tiny, tmp_path):
    torch.manual_seed(0)
    steps, seed = 8, 3
    seen, rows, _, changed = _train(tiny, tmp_path, steps, seed, strategy="hybrid", alpha=0.5)
    assert changed, "the trainer did not update the model"
    plain = rows.with_format(None)
    key = {(a, p): (i, x, y) for a, p, i, x, y in zip(plain["anchor"], plain["positive"], plain["pair_id"],
                                                         plain["query_language"], plain["passage_language"])}
    batches = [[key[r] for r in batch] for batch in seen]
    assert len(batches) == steps and all(len(b) == BATCH for b in batches)
    kinds = []
    for b in batches:
        assert len({pid for pid, _, _ in b}) == len(b), f"a pair id repeats in one batch: {b}"
        mono = [x == y for _, x, y in b]
        assert all(mono) or not any(mono), f"one batch mixes kinds: {b}"
        if all(mono):
            assert len({x for _, x, _ in b}) == 1, "a monolingual batch holds one language"
        else:
            assert len({(x, y) for _, x, y in b}) == 1, "a per-batch cross-lingual batch holds one (X, Y)"
        kinds.append(MONOLINGUAL if all(mono) else CROSSLINGUAL)
    assert set(kinds) == {MONOLINGUAL, CROSSLINGUAL}, kinds
    # exactly the batches polyir's own sampler draws with this config and seed
    own = HybridBatchSampler(tiny["corpus"], SamplerConfig(strategy="hybrid", alpha=0.5, batch_size=BATCH,
                                                           seed=seed, drop_last=False))
    expected = [[(e.pair_id, e.query_language, e.passage_language) for e in b] for b in own.take(steps)]
    assert batches == expected


def _sampler(tiny, rows=None, **kw) -> PolyirBatchSampler:
    rows = rows if rows is not None else corpus_to_rows(tiny["corpus"])
    options = {"strategy": "hybrid", "alpha": 0.5, **kw.pop("sampler", {})}
    return PolyirBatchSampler(rows, BATCH, True, seed=kw.pop("seed", 0), sampler=options, **kw)


def test_set_epoch_gives_each_epoch_its_own_fixed_batches(tiny):
    a = _sampler(tiny)
    epoch0 = list(a)
    a.set_epoch(1)
    epoch1 = list(a)
    assert len(epoch0) == len(a) == len(epoch1) > 0
    assert epoch0 != epoch1
    b = _sampler(tiny)
    b.set_epoch(1)  # straight to epoch 1: the same batches as after epoch 0
    assert list(b) == epoch1
    a.set_epoch(0)
    assert list(a) == epoch0
    assert list(_sampler(tiny, seed=1)) != epoch0


def test_two_processes_share_each_global_step(tiny):
    s = _sampler(tiny, world_size=2, sampler={"alpha": 0.5})
    out = list(s)
    assert len(out) == len(s) == 2 * s.batches_per_epoch
    rows = corpus_to_rows(tiny["corpus"]).with_format(None)
    meta = list(zip(rows["pair_id"], rows["query_language"], rows["passage_language"]))
    ranks = [HybridBatchSampler(s.index.corpora, s.config, rank=r, world_size=2) for r in range(2)]
    for step in range(0, len(out), 2):  # accelerate gives process r the batches r, r + 2, ...
        r0, r1 = [[meta[i] for i in out[step + r]] for r in range(2)]
        assert not {p for p, _, _ in r0} & {p for p, _, _ in r1}, "ranks share a pair id in one global step"
        kind = {x == y for _, x, y in r0 + r1}
        assert len(kind) == 1, "both ranks see the same batch kind"
        for r, got in enumerate((r0, r1)):
            want = [(e.pair_id, e.query_language, e.passage_language) for e in ranks[r].next_batch()]
            assert got == want


def test_rows_without_crosslingual_pairs_are_refused_for_hybrid(tiny):
    mono = corpus_to_rows(tiny["corpus"], pairs="monolingual")
    with pytest.raises(DataFormatError, match="no row for pair id .*corpus_to_rows"):
        _sampler(tiny, rows=mono)
    # one language column is enough for monolingual batches
    single = mono.remove_columns("passage_language").rename_column("query_language", "language")
    s = PolyirBatchSampler(single, BATCH, True, sampler={"strategy": "monolingual"},
                           columns=RowColumns(language="language"))
    langs = single.with_format(None)["language"]
    for batch in s:
        assert len({langs[i] for i in batch}) == 1


def test_metadata_columns_are_hidden_from_the_collator_and_checked(tiny):
    rows = corpus_to_rows(tiny["corpus"])
    _sampler(tiny, rows=rows)
    assert set(rows[0]) == {"anchor", "positive"}
    _sampler(tiny, rows=rows)  # a second trainer set-up on the same dataset still finds its columns
    with pytest.raises(DataFormatError, match="no column.*'pair_id'"):
        _sampler(tiny, rows=corpus_to_rows(tiny["corpus"]).remove_columns("pair_id"))
    bad = corpus_to_rows(tiny["corpus"]).with_format(None).to_dict()
    bad["anchor"][1] = "a different question"
    from datasets import Dataset

    assert bad["pair_id"][0] == bad["pair_id"][1] and bad["query_language"][0] == bad["query_language"][1]
    with pytest.raises(DataFormatError, match="rows 0 and 1: .* two different query texts"):
        _sampler(tiny, rows=Dataset.from_dict(bad))


def test_lareqa_evaluator_equals_polyir_evaluate(tiny, tmp_path):
    """The evaluator on a loaded folder gives exactly what polyir's own evaluation gives."""
    import polyir
    from sentence_transformers import SentenceTransformer

    from polyir.models.encoder import Encoder, EncoderSettings

    settings = EncoderSettings(query_prefix="query: ", passage_prefix="passage: ", query_max_length=12,
                               passage_max_length=24)
    folder = Encoder.from_transformers(tiny["model_dir"], settings, device="cpu").save(tmp_path / "model")
    own = polyir.evaluate(str(folder), tiny["task"], device="cpu")
    evaluator = LareqaEvaluator(tiny["task"], name="tiny")
    got = evaluator(SentenceTransformer(str(folder), device="cpu"), output_path=str(tmp_path))
    assert evaluator.primary_metric == "tiny_mul_map"
    for m in ("mo_map", "cr_map", "mul_map", "rank_distance"):
        assert got[f"tiny_{m}"] == pytest.approx(own.metrics[m], abs=1e-9), m
    assert (tmp_path / "lareqa_tiny_results.json").is_file()
    assert 0 < got["tiny_mul_map"] <= 1 and np.isfinite(got["tiny_rank_distance"])
