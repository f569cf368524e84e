"""Model folders that travel: prompts and query length for plain sentence-transformers, the model card, push staging."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from polyir.models.card import METRIC_NAMES

LANGS = ["en", "de", "es"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from polyir.testing import build_tiny_lareqa_world

    return build_tiny_lareqa_world(tmp_path_factory.mktemp("card"), LANGS)


@pytest.fixture(scope="module")
def run(tiny):
    """A 4-step hybrid run with validation every 2 steps and the alignment regulariser."""
    return _train_tiny(tiny, tiny["root"] / "run", {
        "sampler": {"strategy": "hybrid", "alpha": 0.25},
        "optim": {"lr": 3e-3, "max_steps": 4, "batch_size": 4, "warmup_ratio": 0.0, "precision": "fp32",
                  "freeze_word_embeddings": False},
        "regularization": {"align_weight": 0.5},
    })


def _train_tiny(tiny, output_dir: Path, settings: dict):
    """polyir.train on the tiny model and data (one thread), with ``settings`` on top of the shared ones."""
    import polyir

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return polyir.train({
            "model": {"spec": str(tiny["model"]), "device": "cpu", "query_max_length": 16, "passage_max_length": 24},
            "data": {"train": [{"source": "mlqa-r", "languages": LANGS}], "data_dir": str(tiny["data"]),
                     "download": False},
            "validation": {"count": 4, "every": 2, "max_loss_batches": 1},
            "seed": 0, "output_dir": str(output_dir), "log_every": 1, "progress": False,
            **settings,
        })
    finally:
        torch.set_num_threads(threads)


def _card(folder: Path):
    from huggingface_hub import ModelCard

    return ModelCard.load(folder / "README.md")


def _results(card, split: str) -> dict[str, float]:
    return {r.metric_type: r.metric_value for r in (card.data.eval_results or []) if r.dataset_split == split}


def test_run_cards_state_the_training_and_validation(run):
    rows = [json.loads(x) for x in (run.output_dir / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    val = [r for r in rows if r["type"] == "validation"]
    best_row = [r for r in val if r["best"]][-1]
    for name, row in (("best", best_row), ("last", val[-1])):
        card = _card(run.output_dir / name)
        assert card.data.library_name == "sentence-transformers"
        assert sorted(card.data.language) == sorted(LANGS)
        assert "hybrid-batches" in card.data.tags
        got = _results(card, "validation")
        want = {k[4:]: v for k, v in row.items() if k.startswith("val_") and k[4:] in METRIC_NAMES and v is not None}
        assert want and got == pytest.approx(want), name
        assert card.data.eval_results[0].dataset_type == "mlqa-r"
        text = card.text
        assert "hybrid, α = 0.25" in text
        assert f"steps: {row['step']} (of 4 planned)" in text
        assert "alignment" in text and "align_weight" in text
        assert "`mlqa-r` (de, en, es)" in text
        # the model-index block is valid metadata the hub reads
        meta = yaml.safe_load(card.content.split("---")[1])
        assert meta["model-index"][0]["results"]


def test_saved_folder_encodes_like_polyir_under_plain_sentence_transformers(run, tmp_path):
    from sentence_transformers import SentenceTransformer

    from polyir.models.resolve import load_encoder

    folder = run.output_dir / "last"
    config = json.loads((folder / "config_sentence_transformers.json").read_text(encoding="utf-8"))
    assert set(config["prompts"]) >= {"query", "document", "passage"}
    assert config["prompts"]["document"] == config["prompts"]["passage"]
    long_query = " ".join(["en who was the cat 0 ?"] * 8)  # longer than the 16-token query limit
    doc = "en the cat ran in the park 0 ."
    enc = load_encoder(str(folder), device="cpu")
    st = SentenceTransformer(str(folder), device="cpu")
    q_polyir = enc.encode([long_query], "query", show_progress=False)
    q_st = st.encode_query([long_query])
    np.testing.assert_allclose(q_st, q_polyir, atol=1e-5)
    np.testing.assert_allclose(st.encode_document([doc]), enc.encode([doc], "passage", show_progress=False), atol=1e-5)
    # without the query length the long query would be encoded differently
    assert not np.allclose(st.encode([long_query]), q_polyir, atol=1e-4)


def test_old_folders_without_document_prompt_or_query_length_still_load(run, tmp_path):
    import shutil

    from polyir.models.resolve import load_encoder

    old = tmp_path / "old"
    shutil.copytree(run.output_dir / "last", old)
    cfg_path = old / "config_sentence_transformers.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["prompts"].pop("document")
    cfg_path.write_text(json.dumps(cfg), encoding="utf-8")
    bert_cfg = old / "sentence_bert_config.json"
    data = json.loads(bert_cfg.read_text(encoding="utf-8"))
    data.pop("query_length", None)
    data.pop("document_length", None)
    bert_cfg.write_text(json.dumps(data), encoding="utf-8")
    (old / "README.md").unlink()
    enc = load_encoder(str(old), device="cpu")
    assert enc.settings.query_max_length == 16 and enc.settings.passage_prefix == ""
    (old / "polyir_encoder.json").unlink()  # a folder polyir did not write: settings from sentence-transformers
    enc2 = load_encoder(str(old), device="cpu")
    assert enc2.settings.passage_max_length == 24


def test_push_dry_run_stages_the_best_model_with_its_card(run, tiny, tmp_path):
    import polyir
    from polyir.cli import app

    result = polyir.evaluate(str(run.best_model), "xquad-r", data_dir=tiny["data"], languages=LANGS, device="cpu")
    res_path = tmp_path / "xquad.json"
    res_path.write_text(json.dumps(result.to_dict()), encoding="utf-8")
    stage = tmp_path / "stage"
    out = CliRunner().invoke(app, ["push", str(run.output_dir), "--repo", "someone/tiny-hybrid", "--dry-run",
                                   "--results", str(res_path), "--stage", str(stage)])
    assert out.exit_code == 0, out.output
    assert "would upload" in out.output and "README.md" in out.output and "model.safetensors" in out.output
    staged = {p.name for p in stage.rglob("*") if p.is_file()}
    assert {"README.md", "modules.json", "polyir_encoder.json", "config_sentence_transformers.json"} <= staged
    card = _card(stage)
    assert card.data.model_name == "tiny-hybrid"
    test = _results(card, "test")
    assert test["mul_map"] == pytest.approx(result.metrics["mul_map"])
    assert test["rank_distance"] == pytest.approx(result.metrics["rank_distance"])
    assert _results(card, "validation")  # the best row's validation figures too
    # the source folder is left as it was: the card with test results lives in the staging folder only
    assert "test" not in {r.dataset_split for r in _card(run.best_model).data.eval_results}


def test_push_refuses_what_is_not_a_model(tmp_path):
    from polyir.cli import app

    out = CliRunner().invoke(app, ["push", str(tmp_path), "--repo", "a/b", "--dry-run"])
    assert out.exit_code != 0 and "neither a model folder" in out.output


def test_debiased_model_card_states_the_projection(tiny, tmp_path):
    import polyir

    texts = {lang: [f"{lang} the cat sat on the mat {i} ." for i in range(12)] for lang in LANGS}
    polyir.debias(str(tiny["model"]), texts, output=tmp_path / "deb")
    card = _card(tmp_path / "deb")
    assert "debiased" in card.data.tags and card.data.model_name == "deb"
    line = next(x for x in card.text.splitlines() if x.startswith("Method `subspace` (rank 2"))
    assert all(lang in line for lang in LANGS)  # the fitting languages, from polyir_debias.json


def test_lora_and_matryoshka_cards_name_the_adapter_and_dimensions(tiny, tmp_path):
    import shutil

    from polyir.models.card import write_model_card

    result = _train_tiny(tiny, tmp_path / "run", {
        "optim": {"lr": 3e-3, "max_steps": 2, "batch_size": 4, "warmup_ratio": 0.0, "precision": "fp32",
                  "matryoshka_dims": [32, 16], "matryoshka_weights": [1, 0.5]},
        "adapter": {"kind": "lora", "r": 4, "alpha": 8, "save": "adapter"},
    })
    for name in ("best", "last"):
        card = _card(result.output_dir / name)
        assert {"lora", "matryoshka"} <= set(card.data.tags), name
        text = " ".join(card.text.split())
        assert ("adapter: LoRA r 4, alpha 8, dropout 0.05, on query, key, value and dense of every encoder layer; "
                "only the adapter was trained; saved as an adapter") in text
        assert "Matryoshka: InfoNCE summed over the first 32, 16 dimensions (weights 1, 0.5)" in text
        assert "This folder holds a LoRA adapter (r 4, alpha 8), not the full weights" in text
        assert f"base model `{Path(tiny['model']).resolve()}`" in text
        assert 'truncate_dim=16' in text and "--truncate-dim 16" in text
    # the same run saved merged: a plain model, so no adapter section (and the training line says merged)
    merged = tmp_path / "merged-run"
    (merged / "last").mkdir(parents=True)
    shutil.copy(result.output_dir / "log.jsonl", merged / "log.jsonl")
    shutil.copy(result.output_dir / "last" / "polyir_encoder.json", merged / "last" / "polyir_encoder.json")
    cfg = yaml.safe_load((result.output_dir / "config.yaml").read_text(encoding="utf-8"))
    cfg["adapter"]["save"] = "merged"
    (merged / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    write_model_card(merged / "last")
    text = " ".join(_card(merged / "last").text.split())
    assert "only the adapter was trained; merged into the weights (a plain model)" in text
    assert "This folder holds" not in text
    # without an adapter or Matryoshka dims the card says neither
    cfg["adapter"] = {"kind": "none"}
    cfg["optim"]["matryoshka_dims"] = cfg["optim"]["matryoshka_weights"] = None
    (merged / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    write_model_card(merged / "last")
    card = _card(merged / "last")
    assert "adapter:" not in card.text and "Matryoshka" not in card.text and "lora" not in card.data.tags
