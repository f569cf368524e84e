"""Regularisers on hand-built vectors: zero at the target, positive away from it, gradients towards it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from polyir.data.types import ParallelPair, QAEntry
from polyir.training.regularizers import (
    TeacherEmbeddings,
    alignment_loss,
    distillation_loss,
    pick_translations,
)


def _vectors(seed: int, n: int = 4, d: int = 6) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", ["mse", "kl"])
def test_distillation_is_zero_when_student_equals_teacher(kind):
    q, p = _vectors(0), _vectors(1)
    assert distillation_loss(q, p, q.clone(), p.clone(), kind=kind).item() == pytest.approx(0.0, abs=1e-6)
    # the scale of an embedding does not matter (cosine geometry)
    assert distillation_loss(3 * q, p, q, 0.5 * p, kind=kind).item() == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("kind", ["mse", "kl"])
def test_distillation_gradient_moves_the_student_towards_the_teacher(kind):
    tq, tp = _vectors(0), _vectors(1)
    sq = (tq + 0.8 * _vectors(2)).requires_grad_(True)
    sp = (tp + 0.8 * _vectors(3)).requires_grad_(True)
    before = distillation_loss(sq, sp, tq, tp, kind=kind)
    assert before.item() > 0.01
    before.backward()
    with torch.no_grad():
        sq2, sp2 = sq - 0.05 * sq.grad, sp - 0.05 * sp.grad
    after = distillation_loss(sq2, sp2, tq, tp, kind=kind)
    assert after.item() < before.item()
    # the teacher gets no gradient: it is a constant target
    assert not tq.requires_grad


def test_mse_distillation_equals_two_minus_two_cosine():
    tq, tp = _vectors(0), _vectors(1)
    sq, sp = _vectors(2), _vectors(3)
    cos = torch.nn.functional.cosine_similarity
    expected = torch.cat([2 - 2 * cos(sq, tq), 2 - 2 * cos(sp, tp)]).mean()
    torch.testing.assert_close(distillation_loss(sq, sp, tq, tp, kind="mse"), expected)


def test_distillation_rejects_mismatched_shapes_and_kinds():
    q = _vectors(0)
    with pytest.raises(ValueError, match="shape"):
        distillation_loss(q, q, q[:2], q)
    with pytest.raises(ValueError, match="unknown"):
        distillation_loss(q, q, q, q, kind="l1")  # type: ignore[arg-type]


def test_alignment_zero_positive_and_pulls_translations_together():
    a = _vectors(0)
    assert alignment_loss(a, a.clone()).item() == pytest.approx(0.0, abs=1e-6)
    # hand-worked: orthogonal rows cost 1, opposite rows 2
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    y = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    assert alignment_loss(x, y).item() == pytest.approx(1.5)
    b = _vectors(1).requires_grad_(True)
    loss = alignment_loss(a, b)
    loss.backward()
    with torch.no_grad():
        cos_before = torch.nn.functional.cosine_similarity(a, b).mean()
        cos_after = torch.nn.functional.cosine_similarity(a, b - 0.1 * b.grad).mean()
    assert cos_after > cos_before
    assert alignment_loss(a[:0], a[:0]).item() == 0.0


def _example(pair_id: str, q: str, p: str):
    return SimpleNamespace(corpus="c", pair_id=pair_id, query_language=q, passage_language=p)


def test_pick_translations_uses_other_languages_and_is_seeded():
    pairs = {
        ("c", "a"): ParallelPair("a", {lang: QAEntry(f"q-{lang}", f"p-{lang}") for lang in ("en", "de", "zh")}),
        ("c", "b"): ParallelPair("b", {"en": QAEntry("q-en-b", "p-en-b")}),
    }
    examples = [_example("a", "en", "de"), _example("b", "en", "en"), _example("a", "zh", "zh")]
    rows, texts = pick_translations(examples, pairs, (0, 1), "query")
    assert rows == [0, 2]  # pair b has no other language
    assert texts[0] in ("q-de", "q-zh") and texts[1] in ("q-en", "q-de")
    assert pick_translations(examples, pairs, (0, 1), "query") == (rows, texts)
    rows_p, texts_p = pick_translations(examples, pairs, (0, 2), "passage")
    assert rows_p == [0, 2] and texts_p[0] in ("p-en", "p-zh") and texts_p[1] != "p-zh"
    drawn = {tuple(pick_translations(examples, pairs, (s,), "query")[1]) for s in range(20)}
    assert len(drawn) > 1  # the seed matters


def test_teacher_embeddings_encode_each_text_once(tmp_path, monkeypatch):
    from polyir.models.resolve import load_encoder
    from polyir.testing import build_tiny_model_dir

    monkeypatch.setenv("POLYIR_CACHE_DIR", str(tmp_path / "cache"))
    enc = load_encoder(str(build_tiny_model_dir(tmp_path / "m", ["a", "b", "c"])), device="cpu")
    calls: list[int] = []
    real = enc.encode

    def counting(texts, kind, **kw):
        calls.append(len(texts))
        return real(texts, kind, **kw)

    enc.encode = counting  # type: ignore[method-assign]
    teacher = TeacherEmbeddings(enc, cache=False)
    teacher.precompute(["a b", "c"], ["a", "b c"], show_progress=False)
    assert calls == [2, 2]
    got = teacher.lookup(["c", "a b", "c"], "query").numpy()
    assert calls == [2, 2]  # served from memory
    expected = real(["c", "a b", "c"], "query", show_progress=False)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    teacher.lookup(["b"], "query")  # unseen text: encoded on demand
    assert calls == [2, 2, 1] and len(teacher) == 5
