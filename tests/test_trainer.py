"""The trainer on a tiny model and a synthetic 3-language corpus: learning, run folder, resume, stopping."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from polyir.data.types import ParallelPair, ParallelQACorpus, QAEntry
from polyir.errors import PolyirError
from polyir.training.config import config_from_dict, load_config
from polyir.training.trainer import StepInfo, latest_checkpoint, split_pairs, train

LANGS = ("en", "de", "fr")
N_PAIRS = 40


def synthetic_corpus(n: int = N_PAIRS) -> ParallelQACorpus:
    """Pair i: a question and answer in 3 languages, sharing an entity token e{i} (like a name)."""
    pairs = []
    for i in range(n):
        entries = {
            lang: QAEntry(
                query=f"{lang}who {lang}w{i} e{i} ?",
                positive=f"e{i} {lang}w{i} {lang}is {lang}a{i % 7} .",
                negatives=(f"e{(i + 1) % n} {lang}w{(i + 1) % n} {lang}is {lang}a{i % 7} .",),
            )
            for lang in LANGS
        }
        pairs.append(ParallelPair(f"p{i:02d}", entries))
    return ParallelQACorpus("synth", pairs)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny BERT knowing the corpus' words, and the corpus as JSONL."""
    from polyir.data.jsonl import write_parallel_jsonl
    from polyir.testing import build_tiny_model_dir

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: thread start-up costs more than the maths
    root = tmp_path_factory.mktemp("trainer")
    corpus = synthetic_corpus()
    texts = [t for p in corpus.pairs for e in p.entries.values() for t in (e.query, e.positive, *e.negatives)]
    words = sorted({w for t in texts for w in t.split()})
    model = build_tiny_model_dir(root / "model", words)
    data = write_parallel_jsonl(corpus, root / "synth.jsonl")
    yield model, Path(data)
    torch.set_num_threads(threads)


def make_config(setup, out: Path, **optim):
    model, data = setup
    opt = {
        "lr": 3e-3,
        "max_steps": 6,
        "batch_size": 8,
        "freeze_word_embeddings": False,
        "precision": "fp32",
        "warmup_ratio": 0.0,
        **optim,
    }
    return {
        "model": {"spec": str(model), "device": "cpu", "query_max_length": 16, "passage_max_length": 16},
        "data": {"train": [str(data)]},
        "validation": {"fraction": 0.2, "every": 100, "max_loss_batches": 2},
        "optim": opt,
        "output_dir": str(out),
        "log_every": 1,
        "checkpoint_every": 100,
        "progress": False,
    }


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    """A model folder's weights (an adapter folder's: the adapter's)."""
    from safetensors.torch import load_file

    file = folder / "model.safetensors"
    return load_file(str(file if file.is_file() else folder / "adapter_model.safetensors"))


def _assert_same_weights(a: Path, b: Path) -> None:
    """Bit-identical weights (torch.equal, not allclose)."""
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    differ = [name for name in wa if not torch.equal(wa[name], wb[name])]
    assert not differ, differ


class Recorder:
    def __init__(self, stop_at: int | None = None):
        self.steps: list[int] = []
        self.pair_ids: list[list[str]] = []
        self.langs: list[list[tuple[str, str]]] = []
        self.stop_at = stop_at

    def __call__(self, info: StepInfo) -> None:
        self.steps.append(info.step)
        self.pair_ids.append([pid for b in info.batches for pid in b.pair_ids])
        self.langs.append([lp for b in info.batches for lp in b.language_pairs])
        if self.stop_at is not None and info.step == self.stop_at:
            raise KeyboardInterrupt("simulated crash")


def test_training_learns_and_writes_the_run_folder(setup, tmp_path):
    raw = make_config(setup, tmp_path / "run", max_steps=30)
    raw["validation"].update(every=10)
    raw["checkpoint_every"] = 15
    config = config_from_dict(raw)
    rec = Recorder()
    result = train(config, on_step=rec)

    losses = result.losses
    assert len(losses) == 30 == result.steps
    assert np.mean(losses[-5:]) < np.mean(losses[:5])

    run = tmp_path / "run"
    expected = {"config.yaml", "run.json", "log.jsonl", "validation_split.json", "best", "last", "checkpoints"}
    assert {p.name for p in run.iterdir()} >= expected
    # the resolved config loads back to the same config
    assert load_config(run / "config.yaml") == config
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["type"] == "train"]
    val_rows = [r for r in rows if r["type"] == "validation"]
    assert [r["step"] for r in train_rows] == list(range(1, 31))
    assert all(r["lr"] > 0 and r["pairs_per_s"] > 0 for r in train_rows[:-1])
    assert [r["step"] for r in val_rows] == [10, 20, 30]
    assert all(0 <= r["val_mul_map"] <= 1 and r["val_loss"] > 0 for r in val_rows)
    info = json.loads((run / "run.json").read_text())
    assert info["steps"] == 30 and info["seed"] == 42 and "torch" in info["versions"]
    assert info["final_metrics"]["val_mul_map"] == val_rows[-1]["val_mul_map"]
    assert info["sampler_stats"]["batches"] == 30
    assert result.best_step in (10, 20, 30)
    assert result.best_value == max(r["val_mul_map"] for r in val_rows)
    # checkpoints: step-15 and step-30 (the final one), each complete
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-15", "step-30"]
    assert latest_checkpoint(run) == run / "checkpoints" / "step-30"
    assert (run / "checkpoints" / "step-30" / "model" / "modules.json").is_file()
    # best/ and last/ are sentence-transformers folders polyir can load
    from polyir.models.resolve import load_encoder

    enc = load_encoder(str(run / "last"), device="cpu")
    assert enc.encode(["enwho enw1 e1 ?"], "query", show_progress=False).shape == (1, 32)
    assert (run / "best" / "modules.json").is_file()
    # held-out pair ids were never trained on
    held = set(json.loads((run / "validation_split.json").read_text())["synth"]["validation_pair_ids"])
    assert len(held) == 8
    assert held.isdisjoint({pid for ids in rec.pair_ids for pid in ids})
    # batches never repeat a pair id; hybrid: both kinds occur
    assert all(len(set(ids)) == len(ids) == 8 for ids in rec.pair_ids)
    kinds = {k for r in train_rows for k in r["kinds"]}
    assert kinds == {"monolingual", "crosslingual"}


def test_resume_equals_uninterrupted(setup, tmp_path):
    def config(out):
        raw = make_config(setup, out, max_steps=6, hard_negatives=1, symmetric_loss=True)
        raw["checkpoint_every"] = 3
        raw["validation"].update(every=2)
        return config_from_dict(raw)

    straight = Recorder()
    a = train(config(tmp_path / "a"), on_step=straight)

    first = Recorder(stop_at=3)
    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path / "b"), on_step=first)
    assert latest_checkpoint(tmp_path / "b").name == "step-3"
    # same seed: same batches and the same loss curve so far
    assert first.pair_ids == straight.pair_ids[:3]
    second = Recorder()
    b = train(config(tmp_path / "b").model_copy(update={"resume_from": "latest"}), on_step=second)

    assert b.resumed_from == tmp_path / "b" / "checkpoints" / "step-3"
    assert second.steps == [4, 5, 6]
    assert first.pair_ids + second.pair_ids == straight.pair_ids
    assert first.langs + second.langs == straight.langs
    assert b.losses == a.losses[3:]  # exactly: resume replays the same arithmetic
    _assert_same_weights(tmp_path / "a" / "last", tmp_path / "b" / "last")
    assert a.best_step == b.best_step and a.best_value == b.best_value
    # the resumed log holds each step once
    rows = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["type"] == "train"] == [1, 2, 3, 4, 5, 6]
    # resuming under other training settings is refused, naming them
    other = config(tmp_path / "b").model_copy(update={"resume_from": str(tmp_path / "b" / "checkpoints" / "step-3")})
    other = other.model_copy(update={"optim": other.optim.model_copy(update={"lr": 1e-4})})
    with pytest.raises(PolyirError, match=r"other settings \(optim\.lr: 0\.003 -> 0\.0001\)"):
        train(other)
    # and training did change the weights (the comparison is not trivially true)
    w0, wb = _weights(tmp_path / "b" / "checkpoints" / "step-3" / "model"), _weights(b.last_dir)
    assert any(not torch.allclose(w0[n], wb[n]) for n in wb)


LORA = {"kind": "lora", "r": 4, "alpha": 8, "dropout": 0.1}
RESUME_VARIANTS = {
    "fp32": {},
    "bf16": {"precision": "bf16"},
    "grad_cache": {"grad_cache": True, "grad_cache_chunk_size": 3},  # several chunks: dropout replayed
    "grad_accumulation": {"grad_accumulation": 2},
    # best/ and last/ merged; the checkpoints keep the adapter, restored onto the base model
    "lora": {"adapter": {**LORA, "save": "merged"}},
    "matryoshka_grad_cache": {"matryoshka_dims": [32, 16, 8], "matryoshka_weights": [1, 1, 0.5],
                              "grad_cache": True, "grad_cache_chunk_size": 3},
}


@pytest.mark.parametrize("variant", sorted(RESUME_VARIANTS))
def test_resume_between_checkpoints_is_bit_identical(setup, tmp_path, variant):
    """Killed at step 3 (checkpoints at 2 and 4), resumed from step 2 and run to step 5: the same
    batches, the same losses and the same weights as the uninterrupted run, bit for bit (dropout on)."""

    def config(out, **extra):
        optim = {k: v for k, v in RESUME_VARIANTS[variant].items() if k != "adapter"}
        raw = make_config(setup, out, max_steps=5, hard_negatives=1, symmetric_loss=True, **optim)
        if "adapter" in RESUME_VARIANTS[variant]:
            raw["adapter"] = RESUME_VARIANTS[variant]["adapter"]
        raw["checkpoint_every"] = 2
        raw["validation"].update(every=2)
        return config_from_dict({**raw, **extra})

    straight = Recorder()
    a = train(config(tmp_path / "a"), on_step=straight)
    first = Recorder(stop_at=3)
    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path / "b"), on_step=first)
    assert latest_checkpoint(tmp_path / "b").name == "step-2"
    second = Recorder()
    b = train(config(tmp_path / "b", resume_from="latest"), on_step=second)

    assert b.resumed_from == tmp_path / "b" / "checkpoints" / "step-2"
    assert second.steps == [3, 4, 5]
    assert second.pair_ids == straight.pair_ids[2:] and second.langs == straight.langs[2:]
    assert b.losses == a.losses[2:]
    _assert_same_weights(tmp_path / "a" / "last", tmp_path / "b" / "last")
    _assert_same_weights(tmp_path / "a" / "best", tmp_path / "b" / "best")
    assert (a.best_step, a.best_value, a.final_metrics) == (b.best_step, b.best_value, b.final_metrics)
    rows = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["type"] == "train"] == [1, 2, 3, 4, 5]
    assert [r["step"] for r in rows if r["type"] == "validation"] == [2, 4, 5]
    # not trivially equal: the last step moved the weights
    ckpts = tmp_path / "b" / "checkpoints"
    w4, w5 = _weights(ckpts / "step-4" / "model"), _weights(ckpts / "step-5" / "model")
    assert any(not torch.equal(w4[n], w5[n]) for n in w5)


def test_resume_latest_without_a_checkpoint_is_an_error(setup, tmp_path):
    """--resume latest never starts from scratch silently (and never deletes what the folder holds)."""
    out = tmp_path / "run"
    with pytest.raises(PolyirError, match="holds no checkpoint") as err:
        train(config_from_dict({**make_config(setup, out), "resume_from": "latest"}))
    assert str(out) in str(err.value) and "\n" not in str(err.value)
    out.mkdir()
    (out / "log.jsonl").write_text('{"type": "train", "step": 1}\n')
    with pytest.raises(PolyirError, match="holds no checkpoint"):
        train(config_from_dict({**make_config(setup, out), "resume_from": "latest"}))
    assert (out / "log.jsonl").read_text() == '{"type": "train", "step": 1}\n'
    assert sorted(p.name for p in out.iterdir()) == ["log.jsonl"]


def _nan_from_step(monkeypatch, step: int) -> None:
    """Make the training loss NaN from the ``step``-th training loss on (validation is left alone)."""
    import polyir.training.losses as trainer_module  # where InfoNCE calls it

    real = trainer_module.info_nce_loss
    calls = {"n": 0}

    def patched(*args, **kwargs):
        loss = real(*args, **kwargs)
        if torch.is_grad_enabled():  # training (validation runs under no_grad)
            calls["n"] += 1
            if calls["n"] >= step:
                loss = loss * float("nan")
        return loss

    monkeypatch.setattr(trainer_module, "info_nce_loss", patched)


def test_non_finite_loss_stops_with_an_error_and_does_not_block_a_rerun(setup, tmp_path, monkeypatch):
    from polyir.training.trainer import FAILED_MARKER, NonFiniteLossError

    out = tmp_path / "run"
    raw = make_config(setup, out, max_steps=4)
    raw["checkpoint_every"] = 2
    with monkeypatch.context() as m:
        _nan_from_step(m, 3)
        with pytest.raises(NonFiniteLossError, match=r"training loss is nan at step 3 of 4") as err:
            train(config_from_dict(raw))
    msg = str(err.value)
    assert isinstance(err.value, PolyirError) and "\n" not in msg and str(out) in msg and "step-2" in msg
    # stopped before step 3's update: the log and checkpoints end at step 2; the folder is marked failed
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["type"] == "train"] == [1, 2]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-2"]
    assert not (out / "run.json").exists() and not (out / "last").exists()
    assert json.loads((out / FAILED_MARKER).read_text())["step"] == 3
    # the same command again: not refused ("already holds a run"); it starts afresh and finishes
    again = train(config_from_dict(raw))
    assert again.steps == 4 and again.resumed_from is None and not (out / FAILED_MARKER).exists()
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["type"] == "train"] == [1, 2, 3, 4]
    # a finished run still blocks a fresh start; overwrite replaces it
    with pytest.raises(PolyirError, match="already holds a run"):
        train(config_from_dict(raw))
    assert train(config_from_dict({**raw, "overwrite": True})).steps == 4


def test_a_diverging_learning_rate_stops_the_run(setup, tmp_path):
    """A real divergence (no patching): a huge learning rate makes the weights, then the loss, non-finite."""
    from polyir.training.trainer import NonFiniteLossError

    raw = make_config(setup, tmp_path / "run", max_steps=6, lr=1e30, max_grad_norm=None)
    with pytest.raises(NonFiniteLossError, match=r"training loss is (nan|inf) at step [2-6] of 6"):
        train(config_from_dict(raw))


def test_early_stopping_stops(setup, tmp_path):
    raw = make_config(setup, tmp_path / "run", max_steps=40, lr=1e-12)
    raw["validation"].update(every=1, patience=2, metric="val_mul_map")
    result = train(config_from_dict(raw))
    # step 1 sets the best; with a negligible lr nothing improves at steps 2 and 3
    assert result.stopped_early and result.steps == 3 < result.total_steps
    assert result.best_step == 1
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["stopped_early"] is True and info["steps"] == 3
    assert latest_checkpoint(tmp_path / "run").name == "step-3"
    # resuming a run that stopped early does not train on
    again = train(config_from_dict({**raw, "resume_from": "latest"}))
    assert again.stopped_early and again.steps == 3 and again.losses == []
    assert again.final_metrics == result.final_metrics


def test_frozen_word_embeddings_stay_unchanged(setup, tmp_path):
    from polyir.models.resolve import load_encoder

    model, _ = setup
    before = load_encoder(str(model), device="cpu").st.state_dict()
    result = train(config_from_dict(make_config(setup, tmp_path / "run", max_steps=3, freeze_word_embeddings=True)))
    after = _weights(result.last_dir)
    key = next(k for k in after if k.endswith("word_embeddings.weight"))
    st_key = next(k for k in before if k.endswith("word_embeddings.weight"))
    assert torch.equal(after[key], before[st_key])
    moved = [k for k in after if not k.endswith("word_embeddings.weight") and "position_ids" not in k]
    changed = [k for k in moved if not torch.allclose(after[k], before[next(b for b in before if b.endswith(k))])]
    assert len(changed) > len(moved) // 2
    assert json.loads((tmp_path / "run" / "run.json").read_text())["freeze_word_embeddings"] is True


def test_frozen_lower_layers_stay_unchanged_and_the_rest_trains(setup, tmp_path):
    """optim.freeze_layers=1: the embedding block and layer 0 keep their weights, the layers above move;
    freezing every layer is refused with the count."""
    from polyir.models.resolve import load_encoder

    model, _ = setup
    def norm(key: str) -> str:  # "0.auto_model.encoder.layer.0..." / "bert.encoder..." -> "encoder.layer.0..."
        hits = [key.find(m) for m in ("embeddings.", "encoder.", "pooler.") if key.find(m) >= 0]
        return key[min(hits):] if hits else key

    before = {norm(k): v for k, v in load_encoder(str(model), device="cpu").st.state_dict().items()}
    result = train(config_from_dict(make_config(setup, tmp_path / "run", max_steps=3, freeze_layers=1)))
    after = {norm(k): v for k, v in _weights(result.last_dir).items()}
    shared = [k for k in after if k in before]
    frozen = [k for k in shared if k.startswith(("embeddings.", "encoder.layer.0."))]
    above = [k for k in shared if k.startswith("encoder.layer.") and not k.startswith("encoder.layer.0.")]
    assert frozen and above
    assert all(torch.equal(after[k], before[k]) for k in frozen)
    assert sum(not torch.equal(after[k], before[k]) for k in above) > len(above) // 2
    assert json.loads((tmp_path / "run" / "run.json").read_text())["freeze_layers"] == 1
    with pytest.raises(PolyirError, match="would freeze all 2 layers"):
        train(config_from_dict(make_config(setup, tmp_path / "run2", max_steps=1, freeze_layers=2)))


def test_gradcache_training_matches_plain_training(setup, tmp_path):
    plain = train(config_from_dict(make_config(setup, tmp_path / "plain", max_steps=2, hard_negatives=1)))
    cached = train(
        config_from_dict(
            make_config(
                setup, tmp_path / "gc", max_steps=2, hard_negatives=1, grad_cache=True, grad_cache_chunk_size=64
            )
        )
    )
    assert cached.losses == pytest.approx(plain.losses, abs=1e-5)
    wp, wc = _weights(plain.last_dir), _weights(cached.last_dir)
    for name in wp:
        assert torch.allclose(wp[name], wc[name], atol=1e-5), name


def test_existing_run_folder_is_not_overwritten(setup, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "log.jsonl").write_text("{}\n")
    with pytest.raises(PolyirError, match="already holds a run"):
        train(config_from_dict(make_config(setup, out)))
    with pytest.raises(PolyirError, match="not a checkpoint"):
        train(config_from_dict({**make_config(setup, tmp_path / "x"), "resume_from": str(tmp_path)}))


def test_split_is_seeded_and_disjoint():
    corpus = synthetic_corpus()
    tr, va = split_pairs(corpus, fraction=0.25, count=None, seed=3)
    tr2, va2 = split_pairs(ParallelQACorpus("synth", corpus.pairs[::-1]), fraction=0.25, count=None, seed=3)
    assert len(va) == 10 and len(tr) == 30
    assert {p.pair_id for p in va.pairs} == {p.pair_id for p in va2.pairs}  # independent of file order
    assert {p.pair_id for p in va.pairs}.isdisjoint(p.pair_id for p in tr.pairs)
    _, va3 = split_pairs(corpus, fraction=0.25, count=None, seed=4)
    assert {p.pair_id for p in va3.pairs} != {p.pair_id for p in va.pairs}
    with pytest.raises(PolyirError, match="nothing to train"):
        split_pairs(corpus, fraction=0.0, count=40, seed=0)


def _mean_cos(enc_a, enc_b, texts, kind) -> float:
    a = enc_a.encode(texts, kind, show_progress=False)
    b = enc_b.encode(texts, kind, show_progress=False)
    return float((a * b).sum(axis=1).mean())  # both normalised


def _train_variant(setup, out: Path, regularization: dict | None = None):
    from polyir.models.resolve import load_encoder

    raw = make_config(setup, out, max_steps=20)
    if regularization:
        raw["regularization"] = regularization
    train(config_from_dict(raw))
    return load_encoder(str(out / "last"), device="cpu")


def test_distillation_keeps_the_student_near_the_teacher(setup, tmp_path, monkeypatch):
    from polyir.models.resolve import load_encoder

    monkeypatch.setenv("POLYIR_CACHE_DIR", str(tmp_path / "cache"))
    base = load_encoder(str(setup[0]), device="cpu")
    texts = [e.query for p in synthetic_corpus().pairs for e in p.entries.values()]
    plain = _train_variant(setup, tmp_path / "plain")
    distilled = _train_variant(setup, tmp_path / "distill", {"distill_weight": 20.0})
    assert _mean_cos(distilled, base, texts, "query") > _mean_cos(plain, base, texts, "query") + 0.01
    rows = [json.loads(x) for x in (tmp_path / "distill" / "log.jsonl").read_text().splitlines()]
    parts = [r["loss_distill"] for r in rows if r["type"] == "train"]
    assert len(parts) == 20 and all(v >= 0 for v in parts)
    # the teacher's embeddings of the corpus were cached on disk for the next run
    assert any((tmp_path / "cache" / "embeddings").rglob("*.npy"))


def test_alignment_pulls_translations_together(setup, tmp_path):
    corpus = synthetic_corpus()
    en = [p.entries["en"].query for p in corpus.pairs]
    de = [p.entries["de"].query for p in corpus.pairs]
    plain = _train_variant(setup, tmp_path / "plain")
    aligned = _train_variant(setup, tmp_path / "align", {"align_weight": 20.0, "align_on": "both"})

    def parallel_cos(enc) -> float:
        a = enc.encode(en, "query", show_progress=False)
        b = enc.encode(de, "query", show_progress=False)
        return float((a * b).sum(axis=1).mean())

    assert parallel_cos(aligned) > parallel_cos(plain) + 0.01
    rows = [json.loads(x) for x in (tmp_path / "align" / "log.jsonl").read_text().splitlines()]
    assert all(r["loss_align"] >= 0 for r in rows if r["type"] == "train")


def test_gradcache_with_regularisers_matches_plain(setup, tmp_path, monkeypatch):
    monkeypatch.setenv("POLYIR_CACHE_DIR", str(tmp_path / "cache"))
    reg = {"distill_weight": 2.0, "distill_loss": "kl", "align_weight": 1.0, "align_on": "both"}
    runs = {}
    for name, extra in (("plain", {}), ("gc", {"grad_cache": True, "grad_cache_chunk_size": 64})):
        raw = make_config(setup, tmp_path / name, max_steps=2, **extra)
        raw["regularization"] = reg
        runs[name] = train(config_from_dict(raw))
    assert runs["gc"].losses == pytest.approx(runs["plain"].losses, abs=1e-5)
    wp, wc = _weights(runs["plain"].last_dir), _weights(runs["gc"].last_dir)
    for name in wp:
        assert torch.allclose(wp[name], wc[name], atol=1e-5), name


def test_paragraph_pool_needs_a_registered_lareqa_source(setup, tmp_path):
    raw = make_config(setup, tmp_path / "run", max_steps=2)
    raw["validation"]["pool"] = "paragraphs"
    with pytest.raises(PolyirError, match="validation.pool=paragraphs"):
        train(config_from_dict(raw))


# ---------------------------------------------------------------------------- LoRA adapters


def _lora_run(setup, out: Path, save: str, **extra):
    raw = make_config(setup, out, max_steps=3, **extra)
    raw["adapter"] = {**LORA, "save": save}
    raw["validation"].update(every=2)
    raw["checkpoint_every"] = 2
    return train(config_from_dict(raw))


def _embeddings_agree(in_memory, folder: Path) -> None:
    """polyir's load_encoder and plain sentence-transformers load ``folder`` to the in-memory model."""
    from sentence_transformers import SentenceTransformer

    from polyir.models.resolve import load_encoder

    queries, docs = ["enwho enw3 e3 ?", "dewho dew5 e5 ?"], ["e3 enw3 enis ena3 .", "e5 dew5 deis dea5 ."]
    want_q = in_memory.encode(queries, "query", show_progress=False)
    want_d = in_memory.encode(docs, "passage", show_progress=False)
    loaded = load_encoder(str(folder), device="cpu")
    np.testing.assert_allclose(loaded.encode(queries, "query", show_progress=False), want_q, atol=1e-5)
    np.testing.assert_allclose(loaded.encode(docs, "passage", show_progress=False), want_d, atol=1e-5)
    st = SentenceTransformer(str(folder), device="cpu")
    np.testing.assert_allclose(st.encode_query(queries), want_q, atol=1e-5)
    np.testing.assert_allclose(st.encode_document(docs), want_d, atol=1e-5)


def test_lora_trains_only_the_adapter_and_saves_load_everywhere(setup, tmp_path):
    from polyir.models.adapter import merged_encoder, peft_model_of, save_encoder
    from polyir.models.card import CARD_FILE

    model, _ = setup
    base = _weights(model)  # the transformers folder the run starts from
    result = _lora_run(setup, tmp_path / "run", "adapter")
    peft = peft_model_of(result.encoder)
    assert peft is not None
    trained = {n: p for n, p in result.encoder.st.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n for n in trained)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["trainable_parameters"] == sum(p.numel() for p in trained.values())
    # the base weights are the original ones, bit for bit; the adapter moved (lora_B starts at zero)
    state = peft.get_base_model().state_dict()
    for name, tensor in base.items():
        key = name if name in state else name.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
        assert torch.equal(state[key], tensor), name
    lora_b = [p for n, p in trained.items() if "lora_B" in n]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)

    # save: adapter -> best/ and last/ hold the adapter only, naming the base model
    last = tmp_path / "run" / "last"
    config = json.loads((last / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["lora_alpha"] == 8 and Path(config["base_model_name_or_path"]) == model.resolve()
    assert not (last / "model.safetensors").exists() and (tmp_path / "run" / "best" / "adapter_config.json").is_file()
    _embeddings_agree(result.encoder, last)
    # save: merged -> a plain model folder with the same embeddings
    merged = save_encoder(result.encoder, tmp_path / "merged", "merged")
    assert (merged / "model.safetensors").is_file() and not (merged / "adapter_config.json").exists()
    _embeddings_agree(result.encoder, merged)
    assert peft_model_of(merged_encoder(result.encoder)) is None and peft_model_of(result.encoder) is peft
    assert "LoRA adapter (r 4, alpha 8)" in (last / CARD_FILE).read_text()


def test_lora_resume_restores_the_adapter_and_refuses_another(setup, tmp_path):
    first = Recorder(stop_at=3)
    raw = make_config(setup, tmp_path / "b", max_steps=4)
    raw.update(adapter={**LORA, "save": "merged"}, checkpoint_every=2)
    with pytest.raises(KeyboardInterrupt):
        train(config_from_dict(raw), on_step=first)
    ckpt = tmp_path / "b" / "checkpoints" / "step-2" / "model"
    assert (ckpt / "adapter_model.safetensors").is_file() and not (ckpt / "model.safetensors").exists()
    other = {**raw, "adapter": {**LORA, "r": 8}, "resume_from": "latest"}
    with pytest.raises(PolyirError, match=r"other settings \(adapter\.r: 4 -> 8\)"):
        train(config_from_dict(other))
    full = {**raw, "adapter": {"kind": "none"}, "resume_from": "latest"}
    with pytest.raises(PolyirError, match=r"adapter\.kind: 'lora' -> 'none'"):
        train(config_from_dict(full))
    resumed = train(config_from_dict({**raw, "resume_from": "latest"}))
    assert resumed.steps == 4 and (resumed.last_dir / "model.safetensors").is_file()


def test_lora_target_modules_errors_name_the_key(setup, tmp_path):
    raw = make_config(setup, tmp_path / "run", max_steps=1)
    raw["adapter"] = {"kind": "lora", "target_modules": ["nosuchlayer"]}
    with pytest.raises(PolyirError, match=r"adapter\.target_modules=\['nosuchlayer'\]"):
        train(config_from_dict(raw))


def test_matryoshka_dims_larger_than_the_model_are_refused(setup, tmp_path):
    raw = make_config(setup, tmp_path / "run", max_steps=1, matryoshka_dims=[64, 16])
    with pytest.raises(PolyirError, match=r"optim\.matryoshka_dims: 64 is larger than the model's embedding dimension 32"):
        train(config_from_dict(raw))


def test_matryoshka_training_logs_each_dimension(setup, tmp_path):
    result = train(config_from_dict(make_config(setup, tmp_path / "run", max_steps=2, matryoshka_dims=[32, 8])))
    rows = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["type"] == "train"]
    for r in train_rows:
        assert r["loss"] == pytest.approx(r["loss_info_nce@32"] + r["loss_info_nce@8"], rel=1e-5)
    assert result.steps == 2


def test_checkpoints_from_before_new_config_keys_still_resume(setup, tmp_path):
    """A checkpoint whose config lacks keys added later (adapter, optim.matryoshka_*) resumes: the
    missing keys count as their defaults, which keep the old behaviour."""
    raw = make_config(setup, tmp_path / "run", max_steps=4)
    raw["checkpoint_every"] = 2
    with pytest.raises(KeyboardInterrupt):
        train(config_from_dict(raw), on_step=Recorder(stop_at=3))
    state_file = tmp_path / "run" / "checkpoints" / "step-2" / "trainer_state.pt"
    state = torch.load(state_file, weights_only=True)
    state["config"].pop("adapter")
    for key in ("matryoshka_dims", "matryoshka_weights"):
        state["config"]["optim"].pop(key)
    torch.save(state, state_file)
    assert train(config_from_dict({**raw, "resume_from": "latest"})).steps == 4


def test_train_command_with_lora_overrides(setup, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from polyir.cli import app

    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(make_config(setup, tmp_path / "run", max_steps=2)), encoding="utf-8")
    res = CliRunner().invoke(app, ["train", "--config", str(config), "--set", "adapter.kind=lora",
                                   "--set", "adapter.r=2", "--set", "adapter.save=adapter",
                                   "--set", "optim.matryoshka_dims=[32, 16]"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "run" / "last" / "adapter_config.json").read_text())["r"] == 2
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["adapter"]["kind"] == "lora" and saved["optim"]["matryoshka_dims"] == [32, 16]
