"""The public API (polyir.api, polyir.results): every block of docs/api.md runs, and its typed results
agree with the modules underneath (evaluate_encoder, write_outputs, compare_results, the trainer)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import polyir
from polyir.data.types import ParallelPair, ParallelQACorpus, QAEntry
from polyir.errors import PolyirError

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
LANGS = ("en", "de", "es")
PROBE = ["enwho enw3 e3 ?", "e5 dew5 deis dea5 ."]


def synthetic_corpus(name: str, ids: range) -> ParallelQACorpus:
    """Pair i: a question and its answer in 3 languages, sharing an entity token e{i}."""
    pairs = [
        ParallelPair(f"p{i:03d}", {
            lang: QAEntry(query=f"{lang}who {lang}w{i} e{i} ?", positive=f"e{i} {lang}w{i} {lang}is {lang}a{i % 7} .")
            for lang in LANGS
        })
        for i in ids
    ]
    return ParallelQACorpus(name, pairs)


def doc_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny model knowing every word, a training corpus (JSONL) and an evaluation task (JSONL)."""
    from polyir.data.jsonl import write_parallel_jsonl
    from polyir.testing import build_tiny_model_dir

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("api")
    train_corpus, task_corpus = synthetic_corpus("train", range(60)), synthetic_corpus("task", range(100, 118))
    texts = [t for c in (train_corpus, task_corpus) for p in c.pairs for e in p.entries.values()
             for t in (e.query, e.positive)]
    model = build_tiny_model_dir(root / "model", sorted({w for t in texts for w in t.split()}))
    yield {
        "root": root,
        "model": model,
        "train": write_parallel_jsonl(train_corpus, root / "train.jsonl"),
        "task": write_parallel_jsonl(task_corpus, root / "task.jsonl"),
        "corpus": train_corpus,
    }
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def doc(world, tmp_path_factory):
    """Run every block of docs/api.md in order in one namespace, the first block's names rebound to tiny data."""
    blocks = doc_blocks()
    work = tmp_path_factory.mktemp("doc")
    ns: dict = {"__name__": "docs_api"}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        exec(compile(blocks[0], "docs/api.md[0]", "exec"), ns)
        for name in ("MODEL", "TASK", "TRAIN", "LANGUAGES"):
            assert name in ns, f"the setup block of docs/api.md no longer defines {name}"
        ns.update(MODEL=str(world["model"]), TASK=str(world["task"]), TRAIN=str(world["train"]), LANGUAGES=list(LANGS))
        for i, block in enumerate(blocks[1:], start=1):
            exec(compile(block, f"docs/api.md[{i}]", "exec"), ns)
    ns["_work"] = work
    return ns


def embed(encoder, texts=PROBE) -> np.ndarray:
    return encoder.encode(texts, "query", show_progress=False)


# ---------------------------------------------------------------------------- the docs page


def test_docs_page_has_the_documented_examples():
    code = "\n".join(doc_blocks())
    assert len(doc_blocks()) >= 5
    for call in ("polyir.load_encoder(", "polyir.load_task(", "polyir.evaluate(", ".save(", "polyir.EvalResult.load(",
                 "polyir.debias(", "polyir.compare(", "polyir.load_corpus(", "polyir.train("):
        assert call in code, call


def test_evaluate_equals_evaluate_encoder(doc, world):
    from polyir.data.load import load_task_or_path
    from polyir.evaluation.run import EvalOptions, evaluate_encoder
    from polyir.models.resolve import load_encoder

    base = doc["base"]
    assert isinstance(base, polyir.EvalResult)
    task = load_task_or_path(str(world["task"]), languages=list(LANGS))
    expected = evaluate_encoder(load_encoder(str(world["model"])), task, EvalOptions(show_progress=False))
    assert base.mo_map == expected["metrics"]["mo_map"]
    assert base.cr_map == expected["metrics"]["cr_map"]
    assert base.mul_map == expected["metrics"]["mul_map"]
    assert base.rank_distance == expected["metrics"]["rank_distance"]
    assert base.hits == {1: expected["metrics"]["mul_hit@1"], 10: expected["metrics"]["mul_hit@10"]}
    assert base.metrics == expected["metrics"]
    assert base.matrix == expected["matrix"]["by_language"] and set(base.matrix) == set(LANGS)
    assert base.per_language == expected["per_language"]
    assert base.per_query == expected["per_query"]
    assert len(base.per_query["query_id"]) == len(task.queries) == 18 * 3
    assert base.dataset == task.name and base.model == str(world["model"])


def test_evaluate_truncate_dim(world):
    full = polyir.evaluate(str(world["model"]), str(world["task"]), languages=list(LANGS), device="cpu")
    same = polyir.evaluate(str(world["model"]), str(world["task"]), languages=list(LANGS), device="cpu",
                           truncate_dim=32)
    cut = polyir.evaluate(str(world["model"]), str(world["task"]), languages=list(LANGS), device="cpu",
                          truncate_dim=8)
    assert same.metrics == pytest.approx(full.metrics, abs=1e-6)
    assert (full.raw["config"]["truncate_dim"], same.raw["config"]["truncate_dim"], cut.raw["config"]["truncate_dim"]) == (None, 32, 8)
    assert cut.per_query["ap_mul"] != pytest.approx(full.per_query["ap_mul"], abs=1e-6)
    with pytest.raises(PolyirError, match=r"truncate_dim 33 is larger than the model's embedding dimension 32"):
        polyir.evaluate(str(world["model"]), str(world["task"]), languages=list(LANGS), truncate_dim=33)


def test_save_writes_the_cli_outputs_and_load_round_trips(doc):
    path = doc["_work"] / doc["path"]  # save returns the path as given (relative to the docs' folder)
    assert path == doc["_work"] / "results" / "base.json"
    for name in ("base.json", "base.heatmap.png", "base.md"):
        assert (path.parent / name).stat().st_size > 0, name
    base, again = doc["base"], doc["again"]
    assert again == base  # every field, raw included
    assert json.loads(path.read_text(encoding="utf-8")) == base.to_dict()
    assert base.to_dict() is not base.raw  # a copy
    assert base.to_dict()["format"] == "polyir.evaluation/1"


def test_eval_result_rejects_a_file_that_is_no_result(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"metrics": {}}', encoding="utf-8")
    with pytest.raises(PolyirError, match="not a polyir evaluation result"):
        polyir.EvalResult.load(bad)


def test_debias_in_memory_and_saved_agree(doc):
    from polyir.debias.model import has_projection, read_debias_record

    debiased, folder = doc["debiased"], doc["_work"] / "models" / "debiased"
    assert has_projection(debiased)
    assert read_debias_record(folder)["method"] == "subspace"
    loaded = polyir.load_encoder(folder)
    np.testing.assert_allclose(embed(loaded), embed(debiased), atol=1e-5)
    assert not np.allclose(embed(debiased), embed(doc["encoder"]), atol=1e-4)
    assert doc["after"].mul_map != doc["base"].mul_map


def test_debias_from_texts_by_language(world):
    texts = {lang: [e.positive for p in world["corpus"].pairs for k, e in p.entries.items() if k == lang]
             for lang in LANGS}
    enc = polyir.load_encoder(world["model"])
    a = polyir.debias(enc, fit=texts, max_per_language=None)
    b = polyir.debias(enc, fit=world["train"], max_per_language=None)  # the same passages, from the file
    np.testing.assert_allclose(embed(a), embed(b), atol=1e-5)
    with pytest.raises(PolyirError, match="at least 2 languages"):
        polyir.debias(enc, fit={"en": texts["en"]})


def test_comparison_is_the_paired_test(doc):
    from polyir.evaluation.compare import compare_results, load_result

    comparison, base, after = doc["comparison"], doc["base"], doc["after"]
    assert isinstance(comparison, polyir.Comparison)
    assert {"mo_map", "cr_map", "mul_map", "rank_distance"} <= set(comparison.metrics)
    mul = comparison["mul_map"]
    assert mul.a == base.mul_map and mul.b == after.mul_map
    assert mul.diff == pytest.approx(after.mul_map - base.mul_map)
    assert mul.ci[0] <= mul.diff <= mul.ci[1] and 0.0 <= mul.p_value <= 1.0
    table = comparison.to_table()
    assert all(m in table for m in comparison.metrics) and f"{mul.diff:+.4f}" in table
    with pytest.raises(KeyError, match="not compared"):
        comparison["ndcg@10"]
    # from saved files: the same rows as the CLI's compare_results
    a_path = doc["_work"] / doc["path"]
    b_path = after.save(doc["_work"] / "results" / "after.json")
    from_files = polyir.compare(a_path, b_path)
    expected = compare_results(load_result(a_path), load_result(b_path))
    assert from_files.to_dict()["rows"] == json.loads(json.dumps(expected["rows"]))
    assert [r.diff for r in from_files.rows] == [r.diff for r in comparison.rows]


def test_train_on_an_in_memory_corpus(doc, world):
    run = doc["run"]
    assert isinstance(run, polyir.TrainRun)
    assert run.steps == 12 and len(run.losses) == 12
    assert (run.best_model / "modules.json").is_file() and run.best_model.parent == run.output_dir
    assert run.best_metric == "val_mul_map" and set(run.metrics) >= {"val_loss", "val_mul_map"}
    start = polyir.load_encoder(world["model"])
    assert not np.allclose(embed(doc["trained"]), embed(start), atol=1e-6)
    config = yaml.safe_load((run.output_dir / "config.yaml").read_text(encoding="utf-8"))
    [source] = config["data"]["train"]
    assert source["name"] == "mine" and re.fullmatch(r"memory:mine:sha256:[0-9a-f]{16}", source["source"])
    split = json.loads((run.output_dir / "validation_split.json").read_text(encoding="utf-8"))
    assert split["mine"]["validation_pairs"] == 16 and split["mine"]["train_pairs"] == 60 - 16
    assert isinstance(doc["result"], polyir.EvalResult)


# ---------------------------------------------------------------------------- the functions


def test_loaders_pass_loaded_objects_through(world):
    corpus = world["corpus"]
    task = polyir.load_task(world["task"])
    enc = polyir.load_encoder(world["model"])
    assert polyir.load_task(task) is task
    assert polyir.load_corpus(corpus) is corpus
    assert polyir.load_encoder(enc) is enc
    assert polyir.load_encoder(enc, query_max_length=8).settings.query_max_length == 8
    assert polyir.load_corpus(world["train"]).pairs == corpus.pairs
    assert polyir.load_corpus(str(world["train"]), languages=["en"]).languages == ["en"]
    assert len(polyir.load_task(world["task"], max_pairs=2).queries) == 2 * 3
    with pytest.raises(PolyirError, match="RetrievalTask"):
        polyir.load_task(42)  # type: ignore[arg-type]
    with pytest.raises(PolyirError, match="not on a loaded corpus"):
        polyir.load_corpus(corpus, languages=["en"])
    with pytest.raises(PolyirError, match="neither a registered dataset"):
        polyir.load_corpus("no-such-corpus")


def _settings(world, out: Path, **optim) -> dict:
    return {
        "model": {"spec": str(world["model"]), "device": "cpu", "query_max_length": 16, "passage_max_length": 16},
        "optim": {"lr": 3e-3, "max_steps": 6, "batch_size": 8, "freeze_word_embeddings": False,
                  "precision": "fp32", "warmup_ratio": 0.0, **optim},
        "validation": {"fraction": 0.2, "every": 100, "max_loss_batches": 2},
        "output_dir": str(out),
        "checkpoint_every": 3,
        "progress": False,
    }


def test_train_config_errors_name_the_key(world, tmp_path):
    with pytest.raises(PolyirError, match=r"optim\.lr: Input should be greater than 0"):
        polyir.train(_settings(world, tmp_path / "a"), optim={"lr": -1}, data=world["corpus"])
    with pytest.raises(PolyirError, match=r"optim\.lrr: unknown key"):
        polyir.train(optim={"lrr": 1}, data=world["corpus"])
    with pytest.raises(PolyirError, match="several corpora are named train"):
        polyir.train(_settings(world, tmp_path / "b"), data=[world["corpus"], world["corpus"]])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_in_memory_resume_is_exact_and_refuses_other_corpora(world, tmp_path):
    from safetensors.torch import load_file

    corpus = world["corpus"]
    full = polyir.train(_settings(world, tmp_path / "full"), data=corpus)

    def crash(info):
        if info.step == 3:
            raise KeyboardInterrupt("simulated crash")

    cut = _settings(world, tmp_path / "cut")
    with pytest.raises(KeyboardInterrupt):
        polyir.train(cut, data=corpus, on_step=crash)
    other = ParallelQACorpus("train", corpus.pairs[:-1])  # same name, other contents
    with pytest.raises(PolyirError, match="other settings.*data.train"):
        polyir.train(cut, data=other, resume_from="latest")
    resumed = polyir.train(cut, data=ParallelQACorpus("train", list(corpus.pairs)), resume_from="latest")
    assert resumed.steps == 6 and resumed.result.resumed_from is not None
    wa = load_file(str(full.last_model / "model.safetensors"))
    wb = load_file(str(resumed.last_model / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_train_data_by_path_and_mixed(world, tmp_path):
    quick = {"optim": {"max_steps": 1}, "validation": {"fraction": 0.0}}
    by_path = polyir.train(_settings(world, tmp_path / "path"), data=world["train"], **quick)
    config = yaml.safe_load((by_path.output_dir / "config.yaml").read_text(encoding="utf-8"))
    assert [s["source"] for s in config["data"]["train"]] == [str(world["train"])]
    assert config["optim"]["lr"] == 3e-3  # sections merge: optim.max_steps did not drop the rest
    mixed = polyir.train(
        _settings(world, tmp_path / "mixed"),
        data=[ParallelQACorpus("mem", world["corpus"].pairs[:30]), world["train"]],
        **quick,
    )
    config = yaml.safe_load((mixed.output_dir / "config.yaml").read_text(encoding="utf-8"))
    assert [s["name"] for s in config["data"]["train"]] == ["mem", "train"]
    assert all(s["source"].startswith("memory:") for s in config["data"]["train"])
    assert mixed.steps == 1 and mixed.metrics == {}


def test_import_polyir_stays_light():
    code = (
        "import sys, polyir\n"
        "assert 'torch' not in sys.modules and 'polyir.api' not in sys.modules, sorted(sys.modules)\n"
        "assert callable(polyir.debias)\n"
        "import polyir.debias.model as m\n"
        "assert polyir.debias.model is m and callable(polyir.debias)\n"
        "assert polyir.__version__ and 'evaluate' in dir(polyir)\n"
        "print(polyir.evaluate.__module__)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "polyir.api"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        polyir.nope  # noqa: B018
