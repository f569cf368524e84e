"""Training-free de-biasing: the maths on synthetic embeddings, the saved folder, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from polyir.debias.model import fit_debias, fit_from_embeddings, save_debiased
from polyir.debias.source import fit_texts
from polyir.errors import PolyirError
from polyir.models.resolve import load_encoder

LANGS = ["de", "en", "es", "zh"]


def _synthetic(d: int = 24, n: int = 40, seed: int = 0):
    """Parallel texts: embedding = content + language offset, offsets orthogonal to content, summing to 0."""
    rng = np.random.default_rng(seed)
    content = np.zeros((n, d))
    content[:, len(LANGS):] = rng.normal(size=(n, d - len(LANGS)))
    offsets = np.zeros((len(LANGS), d))
    offsets[:, : len(LANGS)] = rng.normal(size=(len(LANGS), len(LANGS))) * 3
    offsets -= offsets.mean(axis=0)
    return content, offsets, {lang: content + offsets[i] for i, lang in enumerate(LANGS)}


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_projection_removes_the_language_offset_exactly_and_keeps_content():
    content, _, emb = _synthetic()
    fit = fit_from_embeddings(emb, method="subspace")
    assert fit.rank == len(LANGS) - 1
    projected = {lang: fit.projection.apply(x) for lang, x in emb.items()}
    for lang in LANGS:  # every translation lands on its content vector
        np.testing.assert_allclose(projected[lang], _unit(content), atol=1e-6)
    # content similarities are those of the content alone, and differ from the biased ones
    sims = projected["de"] @ projected["zh"].T
    np.testing.assert_allclose(sims, _unit(content) @ _unit(content).T, atol=1e-6)
    biased = _unit(emb["de"]) @ _unit(emb["zh"]).T
    assert not np.allclose(biased, sims, atol=1e-3)


def test_projection_is_one_matrix_for_every_language_and_idempotent():
    _, _, emb = _synthetic()
    fit = fit_from_embeddings(emb, method="subspace", rank=2)
    p = fit.projection.matrix
    np.testing.assert_allclose(p @ p, p, atol=1e-10)
    np.testing.assert_allclose(p, p.T, atol=1e-12)
    assert np.linalg.matrix_rank(np.eye(p.shape[0]) - p) == 2
    assert fit.singular_values == sorted(fit.singular_values, reverse=True)


def test_centring_removes_each_languages_own_offset():
    content, _, emb = _synthetic()
    fit = fit_from_embeddings(emb, method="center")
    out = fit.centering.apply(emb["es"], ["es"] * len(content))
    # the mean of content is not zero, so centring also removes it: compare with centred content
    np.testing.assert_allclose(out, _unit(content - content.mean(0)), atol=1e-6)
    with pytest.raises(PolyirError, match="no mean for fr"):
        fit.centering.apply(emb["es"][:1], ["fr"])


@pytest.mark.parametrize(
    ("embeddings", "kwargs", "message"),
    [
        ({"en": np.ones((20, 4))}, {}, "at least 2 languages"),
        ({"en": np.ones((20, 4)), "de": np.ones((20, 4))}, {"rank": 2}, "out of range"),
        ({"en": np.ones((20, 4)), "de": np.ones((3, 4))}, {}, r"too few texts.*de \(3\)"),
        ({"en": np.ones((20, 4)), "de": np.ones((20, 4))}, {"method": "pca"}, "unknown de-biasing method"),
    ],
)
def test_bad_fits_are_one_line_errors(embeddings, kwargs, message):
    with pytest.raises(PolyirError, match=message):
        fit_from_embeddings(embeddings, **kwargs)


WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi".split()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from polyir.testing import build_tiny_model_dir

    root = tmp_path_factory.mktemp("debias")
    model = build_tiny_model_dir(root / "hf", WORDS, seed=0)
    folder = root / "parallel"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i, lang in enumerate(["en", "de", "es"]):
        lines = [" ".join(rng.choice(WORDS[i * 4 : i * 4 + 8], size=5)) for _ in range(30)]
        (folder / f"news.{lang}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return model, folder, root


def test_saved_folder_loads_in_sentence_transformers_with_the_same_embeddings(tiny):
    from sentence_transformers import SentenceTransformer

    model, folder, root = tiny
    base = load_encoder(str(model), device="cpu")
    texts = fit_texts(str(folder), max_per_language=20)
    fit = fit_debias(base, texts, show_progress=False)
    out = save_debiased(base, fit, root / "out")
    record = json.loads((out / "polyir_debias.json").read_text())
    assert record["languages"] == ["de", "en", "es"] and record["rank"] == 2
    assert record["counts"] == {"de": 20, "en": 20, "es": 20}
    assert record["base_fingerprint"] == base.fingerprint()

    sample = ["alpha beta gamma", "kappa lambda mu nu"]
    polyir_vecs = load_encoder(str(out), device="cpu").encode(sample, "passage", show_progress=False)
    st = SentenceTransformer(str(out), device="cpu")
    st_vecs = st.encode([base.settings.passage_prefix + t for t in sample], normalize_embeddings=False)
    np.testing.assert_allclose(polyir_vecs, st_vecs, atol=1e-5)
    expected = fit.projection.apply(base.encode(sample, "passage", show_progress=False))
    np.testing.assert_allclose(polyir_vecs, expected, atol=1e-5)
    assert not np.allclose(polyir_vecs, base.encode(sample, "passage", show_progress=False), atol=1e-3)


def test_center_model_needs_languages_and_reloads_its_means(tiny):
    model, folder, root = tiny
    base = load_encoder(str(model), device="cpu")
    fit = fit_debias(base, fit_texts(str(folder), max_per_language=20), method="center", show_progress=False)
    out = save_debiased(base, fit, root / "center")
    loaded = load_encoder(str(out), device="cpu")
    assert loaded.fingerprint() != base.fingerprint()
    with pytest.raises(PolyirError, match="needs each text's language"):
        loaded.encode(["alpha beta"], "query", show_progress=False)
    got = loaded.encode(["alpha beta"], "query", languages=["de"], show_progress=False)
    want = fit.centering.apply(base.encode(["alpha beta"], "query", show_progress=False), ["de"])
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_cli_fits_refuses_a_second_projection_and_keeps_existing_folders(tiny):
    from polyir.cli import app

    model, folder, root = tiny
    runner = CliRunner()
    out = root / "cli"
    args = ["debias", str(model), "--fit", str(folder), "--output", str(out), "--no-progress", "--max-per-language", "15"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert (out / "modules.json").is_file()
    before = (out / "polyir_debias.json").read_bytes()
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--overwrite" in again.output
    assert (out / "polyir_debias.json").read_bytes() == before
    twice = runner.invoke(app, ["debias", str(out), "--fit", str(folder), "--output", str(root / "x"), "--no-progress"])
    assert twice.exit_code == 2 and "already has a de-biasing map" in twice.output
    rank = runner.invoke(app, [*args[:-2], "--rank", "5", "--overwrite"])
    assert rank.exit_code == 2 and "out of range" in rank.output
    one = runner.invoke(app, [*args, "--languages", "en", "--overwrite"])
    assert one.exit_code == 2 and ("at least 2 languages" in one.output or "at least two languages" in one.output)
    absent = runner.invoke(app, [*args, "--languages", "en,fr", "--overwrite"])
    assert absent.exit_code == 2 and "fr" in absent.output
    assert (out / "polyir_debias.json").read_bytes() == before


def test_evaluation_projects_the_models_own_vectors_and_matches_the_full_model(tiny, tmp_path):
    """embed_task encodes with the model underneath the projection and applies the matrix in numpy:
    the same vectors as running the saved model end to end (Dense before Normalize)."""
    from polyir.data.load import load_task_or_path
    from polyir.debias.model import split_projection
    from polyir.evaluation.run import EvalOptions, embed_task

    model, folder, root = tiny
    base = load_encoder(str(model), device="cpu")
    out = save_debiased(base, fit_debias(base, fit_texts(str(folder), max_per_language=20), show_progress=False),
                        tmp_path / "deb")
    debiased = load_encoder(str(out), device="cpu")
    raw, matrix = split_projection(debiased)
    assert raw.fingerprint() == base.fingerprint()  # so it shares the base's embedding cache
    task = load_task_or_path(str(folder))
    q, c, info = embed_task(debiased, task, EvalOptions(show_progress=False))
    assert info["projection"] == "applied after encoding"
    full_q = debiased.encode([x.text for x in task.queries], "query", show_progress=False)
    np.testing.assert_allclose(q, full_q, atol=1e-5)
    assert split_projection(base) is None
