"""Length groups: a partition of the batch by length, and a grouped forward that gives the batch's
embeddings and gradients in the batch's order, so training on them is training on the batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from polyir.training import length_groups as lg
from polyir.training.length_groups import forward_by_length, length_groups


def _cost(lengths, groups, overhead):
    return sum(len(g) * max(lengths[i] for i in g) + overhead for g in groups)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 200), min_size=1, max_size=70), st.integers(0, 2000))
def test_groups_cover_each_text_once_in_length_order_and_never_cost_more(lengths, overhead):
    groups = length_groups(lengths, overhead)
    flat = np.concatenate(groups)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    for a, b in zip(groups, groups[1:]):  # contiguous in length: a group's longest <= the next's shortest
        assert max(lengths[i] for i in a) <= min(lengths[i] for i in b)
    assert _cost(lengths, groups, overhead) <= _cost(lengths, [flat], overhead)


def test_overhead_decides_how_many_groups():
    lengths = [5, 5, 40, 40, 41, 100]
    assert len(length_groups(lengths, 10**6)) == 1
    zero = length_groups(lengths, 0)  # free forwards: no padding at all
    assert all(len({lengths[i] for i in g}) == 1 for g in zero)
    assert length_groups([], 0) == []
    with pytest.raises(ValueError, match="overhead"):
        length_groups(lengths, -1)


TEXTS = ["a", "the cat sat on the mat and the dog ran in the park", "der hund", "the dog", "el gato sat on the mat",
         "who was the first emperor of rome ?", "ok", "the cat"]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    from polyir.models.resolve import load_encoder
    from polyir.testing import build_tiny_model_dir

    words = sorted({w for t in TEXTS for w in t.split()})
    folder = build_tiny_model_dir(tmp_path_factory.mktemp("lg") / "hf", words, dropout=0.0)
    return load_encoder(str(folder), device="cpu")


@pytest.mark.parametrize("side", ["right", "left"])  # left padding is forwarded whole (positions move with it)
def test_grouped_forward_gives_the_batch_embeddings_and_gradients(encoder, side):
    tok = encoder.tokenizer
    old = tok.padding_side
    tok.padding_side = side
    try:
        features = encoder.tokenize(TEXTS, "passage")
    finally:
        tok.padding_side = old
    lengths = features["attention_mask"].sum(1).tolist()
    assert len(length_groups(lengths, 0)) > 2  # the test exercises several groups
    weight = torch.randn(len(TEXTS), encoder.dim, generator=torch.Generator().manual_seed(0))

    def run(grouped: bool):
        encoder.st.zero_grad(set_to_none=True)
        forward = lambda f: encoder.st(f)["sentence_embedding"]  # noqa: E731
        emb = forward_by_length(forward, features, padding_side=side, overhead=0) if grouped else forward(dict(features))
        (emb * weight).sum().backward()
        grads = {n: p.grad.clone() for n, p in encoder.st.named_parameters() if p.grad is not None}
        return emb.detach(), grads

    plain, plain_grads = run(False)
    grouped, grouped_grads = run(True)
    torch.testing.assert_close(grouped, plain, atol=1e-5, rtol=1e-4)
    assert plain_grads.keys() == grouped_grads.keys()
    for name in plain_grads:
        torch.testing.assert_close(grouped_grads[name], plain_grads[name], atol=1e-5, rtol=1e-4, msg=name)


def test_training_with_length_groups_follows_the_same_path(tmp_path, monkeypatch):
    """Without dropout, grouped and ungrouped training take the same steps (up to float rounding)."""
    from polyir.data.jsonl import write_parallel_jsonl
    from polyir.data.types import ParallelPair, ParallelQACorpus, QAEntry
    from polyir.testing import build_tiny_model_dir
    from polyir.training.config import config_from_dict
    from polyir.training.trainer import train

    words = [f"w{i}" for i in range(30)] + ["?", "."]
    pairs = []
    for i in range(24):  # queries of 1..6 words, passages of 1..12: several groups at overhead 0
        entries = {lang: QAEntry(query=" ".join(f"w{(i + k) % 30}" for k in range(1 + i % 6)) + " ?",
                                 positive=" ".join(f"w{(i * 3 + k) % 30}" for k in range(1 + i % 12)) + " .")
                   for lang in ("en", "de")}
        pairs.append(ParallelPair(f"p{i:02d}", entries))
    data = write_parallel_jsonl(ParallelQACorpus("var", pairs), tmp_path / "var.jsonl")
    model = build_tiny_model_dir(tmp_path / "hf", words, dropout=0.0)
    calls = []
    real = lg.length_groups
    monkeypatch.setattr(lg, "length_groups", lambda *a, **k: calls.append(1) or real(*a, **k))

    def run(name, grouped):
        return train(config_from_dict({
            "model": {"spec": str(model), "device": "cpu", "query_max_length": 16, "passage_max_length": 16},
            "data": {"train": [str(data)]}, "validation": {"fraction": 0},
            "optim": {"lr": 3e-3, "max_steps": 4, "batch_size": 8, "freeze_word_embeddings": False,
                      "precision": "fp32", "warmup_ratio": 0.0, "group_by_length": grouped,
                      "length_group_overhead": 0},
            "output_dir": str(tmp_path / name), "log_every": 1, "checkpoint_every": 100, "progress": False,
        }))

    plain = run("plain", False)
    assert not calls
    grouped = run("grouped", True)
    assert calls  # the grouped run did group
    assert grouped.losses == pytest.approx(plain.losses, abs=1e-5)
