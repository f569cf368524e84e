"""InfoNCE loss on hand-built vectors, and GradCache giving the plain path's gradients."""

from __future__ import annotations

import math

import pytest
import torch

from polyir.training.loss import gather_with_grad, info_nce_loss, scores

Q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
P = torch.tensor([[1.0, 0.0], [0.6, 0.8]])


def _lse(*xs: float) -> float:
    return math.log(sum(math.exp(x) for x in xs))


def test_loss_matches_hand_computation():
    # cosines: q0·p0 = 1, q0·p1 = 0.6, q1·p0 = 0, q1·p1 = 0.8; temperature 0.5 doubles them
    expected = ((-2.0 + _lse(2.0, 1.2)) + (-1.6 + _lse(0.0, 1.6))) / 2
    got = info_nce_loss(Q, P, temperature=0.5)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_scores_are_cosines_whatever_the_norm():
    assert torch.allclose(scores(Q * 3, P * 0.1, 1.0), Q @ P.T, atol=1e-6)
    assert info_nce_loss(Q * 5, P * 2, temperature=0.5).item() == pytest.approx(
        info_nce_loss(Q, P, temperature=0.5).item(), rel=1e-6
    )


def test_symmetric_term_is_averaged_with_the_query_side():
    q_side = ((-2.0 + _lse(2.0, 1.2)) + (-1.6 + _lse(0.0, 1.6))) / 2
    # passage -> query: p0 against (q0, q1) = (2, 0); p1 against (q0, q1) = (1.2, 1.6)
    p_side = ((-2.0 + _lse(2.0, 0.0)) + (-1.6 + _lse(1.2, 1.6))) / 2
    got = info_nce_loss(Q, P, temperature=0.5, symmetric=True)
    assert got.item() == pytest.approx((q_side + p_side) / 2, rel=1e-6)
    assert got.item() != pytest.approx(q_side, rel=1e-3)


def test_hard_negatives_join_every_querys_denominator():
    neg = torch.tensor([[0.8, 0.6]])  # cosines: q0 0.8, q1 0.6 -> scores 1.6, 1.2
    expected = ((-2.0 + _lse(2.0, 1.2, 1.6)) + (-1.6 + _lse(0.0, 1.6, 1.2))) / 2
    with_neg = info_nce_loss(Q, P, neg, temperature=0.5)
    assert with_neg.item() == pytest.approx(expected, rel=1e-6)
    assert with_neg.item() > info_nce_loss(Q, P, temperature=0.5).item()
    # an empty negatives block changes nothing
    assert info_nce_loss(Q, P, neg[:0], temperature=0.5).item() == pytest.approx(
        info_nce_loss(Q, P, temperature=0.5).item(), rel=1e-7
    )


def test_gradient_step_pulls_positives_together_and_pushes_negatives_apart():
    torch.manual_seed(0)
    q = torch.randn(6, 8, requires_grad=True)
    p = torch.randn(6, 8, requires_grad=True)
    loss = info_nce_loss(q, p, temperature=0.1)
    loss.backward()
    with torch.no_grad():
        before = scores(q, p, 1.0)
        after = scores(q - 0.05 * q.grad, p - 0.05 * p.grad, 1.0)
        off = ~torch.eye(6, dtype=torch.bool)
        assert (after.diag() - before.diag()).mean() > 0  # positives closer
        assert (after[off] - before[off]).mean() < 0  # in-batch negatives further
        assert info_nce_loss(q - 0.05 * q.grad, p - 0.05 * p.grad, temperature=0.1) < loss


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="temperature"):
        info_nce_loss(Q, P, temperature=0.0)
    with pytest.raises(ValueError, match="differ"):
        info_nce_loss(Q, P[:1])


def test_gather_is_identity_without_a_process_group():
    x = torch.randn(3, 4)
    gathered, offset = gather_with_grad(x)
    assert gathered is x and offset == 0
    # cross_device=True without a process group is the local loss
    assert info_nce_loss(Q, P, temperature=0.5, cross_device=True).item() == pytest.approx(
        info_nce_loss(Q, P, temperature=0.5).item()
    )


# ---------------------------------------------------------------------------- GradCache


WORDS = [f"w{i}" for i in range(40)]


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    from polyir.models.resolve import load_encoder
    from polyir.testing import build_tiny_model_dir

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: thread start-up costs more than the maths
    path = build_tiny_model_dir(tmp_path_factory.mktemp("gc") / "m", WORDS)
    yield load_encoder(str(path), device="cpu", query_max_length=16, passage_max_length=16)
    torch.set_num_threads(threads)


def _texts(n: int, offset: int, length: int) -> list[str]:
    return [" ".join(WORDS[(offset + i * 7 + j) % 40] for j in range(1 + (i + length) % length)) for i in range(n)]


def _grads(encoder) -> dict[str, torch.Tensor]:
    out = {n: p.grad.detach().clone() for n, p in encoder.st.named_parameters() if p.grad is not None}
    encoder.st.zero_grad(set_to_none=True)
    return out


def _plain(encoder, queries, passages, loss_fn) -> float:
    q = encoder.embed(queries, "query")
    p = encoder.embed(passages, "passage")
    loss = loss_fn(q, p)
    loss.backward()
    return loss.item()


def _loss_fn(n_pos: int):
    def fn(q, p):
        return info_nce_loss(q, p[:n_pos], p[n_pos:], temperature=0.05, symmetric=True)

    return fn


def test_gradcache_equals_plain_gradients(tiny_encoder):
    from polyir.training.trainer import gradcache_backward

    enc = tiny_encoder
    queries, positives, negatives = _texts(8, 0, 3), _texts(8, 3, 6), _texts(4, 11, 5)
    passages = positives + negatives
    enc.st.eval()  # no dropout: chunked and whole-batch forwards compute the same function
    enc.st.zero_grad(set_to_none=True)
    plain_loss = _plain(enc, queries, passages, _loss_fn(8))
    plain = _grads(enc)
    gc_loss = gradcache_backward(enc, queries, passages, _loss_fn(8), chunk_size=3)
    cached = _grads(enc)
    assert gc_loss == pytest.approx(plain_loss, abs=1e-5)
    assert plain.keys() == cached.keys() and len(plain) > 10
    for name in plain:
        assert torch.allclose(plain[name], cached[name], atol=1e-5), name
    assert max(g.abs().max().item() for g in plain.values()) > 1e-3  # gradients are not trivially zero


def test_gradcache_replays_dropout(tiny_encoder):
    """With dropout on, the re-run must see the masks of the no-graph pass."""
    from polyir.training.trainer import gradcache_backward

    enc = tiny_encoder
    queries, passages = _texts(6, 1, 4), _texts(6, 5, 5)
    enc.st.train()
    try:
        # One chunk per side: same RNG use as the plain path, so the gradients must match it.
        torch.manual_seed(7)
        _plain(enc, queries, passages, _loss_fn(6))
        plain = _grads(enc)
        torch.manual_seed(7)
        gradcache_backward(enc, queries, passages, _loss_fn(6), chunk_size=64)
        cached = _grads(enc)
        for name in plain:
            assert torch.allclose(plain[name], cached[name], atol=1e-5), name
        # Several chunks: reference = per-chunk forwards with graph, in the same order.
        torch.manual_seed(9)
        q = torch.cat([enc.embed(queries[i : i + 4], "query") for i in range(0, 6, 4)])
        p = torch.cat([enc.embed(passages[i : i + 4], "passage") for i in range(0, 6, 4)])
        _loss_fn(6)(q, p).backward()
        reference = _grads(enc)
        torch.manual_seed(9)
        gradcache_backward(enc, queries, passages, _loss_fn(6), chunk_size=4)
        cached = _grads(enc)
        for name in reference:
            assert torch.allclose(reference[name], cached[name], atol=1e-5), name
        # and dropout really is on: another seed gives other gradients
        torch.manual_seed(10)
        gradcache_backward(enc, queries, passages, _loss_fn(6), chunk_size=4)
        other = _grads(enc)
        assert any(not torch.allclose(other[n], cached[n], atol=1e-6) for n in cached)
    finally:
        enc.st.eval()


# ---------------------------------------------------------------------------- Matryoshka


def _step_texts(n_q: int, n_p: int, n_pos: int):
    from polyir.training.losses import StepTexts

    return StepTexts(None, [""] * n_q, [""] * n_p, n_q, n_p, n_pos)  # type: ignore[arg-type]


def test_matryoshka_is_the_weighted_sum_over_truncated_renormalised_embeddings():
    import torch.nn.functional as F

    from polyir.training.losses import InfoNCE, Matryoshka

    torch.manual_seed(0)
    q, p = torch.randn(4, 16), torch.randn(6, 16)  # 4 positives, 2 hard negatives
    texts = _step_texts(4, 6, 4)
    base = InfoNCE(0.1, symmetric=True)
    dims, weights = [16, 8, 4], [1.0, 0.5, 2.0]
    got = Matryoshka(base, dims, weights)(q, p, texts)
    manual = sum(
        w * info_nce_loss(F.normalize(q[:, :d], dim=-1), F.normalize(p[:4, :d], dim=-1),
                          F.normalize(p[4:, :d], dim=-1), temperature=0.1, symmetric=True)
        for d, w in zip(dims, weights)
    )
    assert got.item() == pytest.approx(manual.item(), rel=1e-6)
    # default weights: 1 each; a smaller cut is another loss
    unweighted = Matryoshka(base, [16, 4])(q, p, texts)
    assert unweighted.item() == pytest.approx((base(q, p, texts) + base(q[:, :4], p[:, :4], texts)).item(), rel=1e-6)
    assert base(q[:, :4], p[:, :4], texts).item() != pytest.approx(base(q, p, texts).item(), rel=1e-3)


def test_matryoshka_at_the_full_dimension_is_plain_infonce():
    from polyir.training.losses import InfoNCE, Matryoshka

    torch.manual_seed(1)
    q, p = torch.randn(5, 12), torch.randn(5, 12)
    texts = _step_texts(5, 5, 5)
    base = InfoNCE(0.05)
    wrapped = Matryoshka(base, [12])
    assert torch.equal(wrapped(q, p, texts), base(q, p, texts))
    assert wrapped.name == "info_nce" and list(wrapped.take_parts()) == ["info_nce@12"]
    with pytest.raises(ValueError, match="dimension 24 is larger than the embedding's 12"):
        Matryoshka(base, [24])(q, p, texts)


def test_matryoshka_objective_from_the_config_and_its_log_parts():
    from polyir.training.config import config_from_dict
    from polyir.training.losses import InfoNCE, Matryoshka, build_objective

    cfg = config_from_dict({"optim": {"temperature": 0.1, "matryoshka_dims": [8, 4], "matryoshka_weights": [1, 0.25]}})
    objective = build_objective(cfg, cross_device=False, rank=0, device=torch.device("cpu"))
    (weight, loss), = objective.terms
    assert weight == 1.0 and isinstance(loss, Matryoshka) and isinstance(loss.loss, InfoNCE)
    assert (loss.dims, loss.weights) == ([8, 4], [1.0, 0.25])
    torch.manual_seed(2)
    q, p = torch.randn(3, 8), torch.randn(3, 8)
    value = objective(q, p, _step_texts(3, 3, 3))
    parts = objective.take_parts()
    assert set(parts) == {"info_nce@8", "info_nce@4"}
    assert value.item() == pytest.approx(parts["info_nce@8"][0] + 0.25 * parts["info_nce@4"][0], rel=1e-6)
    plain = build_objective(config_from_dict({}), cross_device=False, rank=0, device=torch.device("cpu"))
    assert isinstance(plain.terms[0][1], InfoNCE)


def test_gradcache_equals_plain_gradients_under_matryoshka(tiny_encoder):
    from polyir.training.losses import InfoNCE, Matryoshka
    from polyir.training.trainer import gradcache_backward

    enc = tiny_encoder
    queries, positives, negatives = _texts(6, 2, 3), _texts(6, 4, 5), _texts(3, 9, 4)
    passages = positives + negatives
    texts = _step_texts(6, 9, 6)
    loss = Matryoshka(InfoNCE(0.05, symmetric=True), [32, 16, 8], [1.0, 1.0, 0.5])

    def loss_fn(q, p):
        return loss(q, p, texts)

    enc.st.eval()
    enc.st.zero_grad(set_to_none=True)
    plain_loss = _plain(enc, queries, passages, loss_fn)
    plain = _grads(enc)
    gc_loss = gradcache_backward(enc, queries, passages, loss_fn, chunk_size=4)
    cached = _grads(enc)
    assert gc_loss == pytest.approx(plain_loss, abs=1e-5)
    assert plain.keys() == cached.keys() and len(plain) > 10
    for name in plain:
        assert torch.allclose(plain[name], cached[name], atol=1e-5), name
