"""polyir.training.fast_dropout: the same dropout as torch's (rate, scale, train/eval), cheaper masks."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from polyir.training import fast_dropout as fd


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_masks_drop_at_the_asked_rate_and_neighbours_independently(p):
    torch.manual_seed(0)
    keep = fd.keep_mask((1000, 1000), p)
    assert keep.dtype == torch.bool and keep.shape == (1000, 1000)
    # 10^6 draws: the binomial standard deviation of the kept share is below .0005
    assert abs(keep.float().mean().item() - (1 - p)) < 0.002
    # the four 16-bit uniforms of one 64-bit draw are independent: both neighbours dropped at rate p^2
    dropped = ~keep.flatten()
    for lag in (1, 2, 3, 4):
        both = (dropped[:-lag] & dropped[lag:]).float().mean().item()
        assert abs(both - p * p) < 0.003


def test_odd_sizes_and_seeds():
    torch.manual_seed(3)
    a = fd.keep_mask((7, 5), 0.3)
    torch.manual_seed(3)
    b = fd.keep_mask((7, 5), 0.3)
    c = fd.keep_mask((7, 5), 0.3)
    assert a.shape == (7, 5) and torch.equal(a, b) and not torch.equal(b, c)


def test_survivors_are_scaled_and_eval_is_identity():
    torch.manual_seed(0)
    x = torch.rand(400, 300) + 0.5
    y = fd.fast_dropout(x, 0.2)
    kept = y != 0
    assert torch.allclose(y[kept], x[kept] / 0.8)
    assert 0.78 < kept.float().mean().item() < 0.82
    layer = fd.FastDropout(0.2)
    layer.eval()
    assert layer(x) is x
    assert fd.fast_dropout(x, 0.0) is x and torch.count_nonzero(fd.fast_dropout(x, 1.0)) == 0
    x.requires_grad_(True)
    fd.fast_dropout(x, 0.2).sum().backward()
    grads = x.grad.unique()
    assert len(grads) == 2 and grads[0] == 0 and torch.isclose(grads[1], torch.tensor(1 / 0.8))


def _tiny(tmp_path, dropout=0.1):
    from transformers import AutoModel

    from polyir.testing import build_tiny_model_dir

    folder = build_tiny_model_dir(tmp_path / "tiny", ["alpha", "beta", "gamma", "delta"], dropout=dropout)
    model = AutoModel.from_pretrained(str(folder), attn_implementation="sdpa")
    ids = torch.tensor([[2, 11, 12, 13, 14, 3], [2, 12, 3, 0, 0, 0]])  # the second row padded
    mask = (ids != 0).long()
    return model, ids, mask


def test_swapped_model_matches_the_original_in_eval_and_without_masks_in_training(tmp_path, monkeypatch):
    model, ids, mask = _tiny(tmp_path)
    original = copy.deepcopy(model).eval()
    n_dropouts = sum(type(m) is nn.Dropout for m in model.modules())
    assert fd.use_fast_dropout(model) == n_dropouts > 0
    assert not any(type(m) is nn.Dropout for m in model.modules())
    assert model.config._attn_implementation == fd.ATTENTION_NAME
    with torch.no_grad():
        want = original(input_ids=ids, attention_mask=mask).last_hidden_state
        model.eval()
        assert torch.equal(model(input_ids=ids, attention_mask=mask).last_hidden_state, want)
        # training mode with every mask all-ones and no scaling: the hand-written attention path (with the
        # padding mask) computes what SDPA computes
        monkeypatch.setattr(fd, "fast_dropout", lambda x, p, training=True: x)
        model.train()
        got = model(input_ids=ids, attention_mask=mask).last_hidden_state
    valid = mask.bool()
    assert torch.allclose(got[valid], want[valid], atol=1e-5)


def test_training_forward_is_seeded_and_drops(tmp_path):
    model, ids, mask = _tiny(tmp_path)
    fd.use_fast_dropout(model)
    model.train()
    outs = []
    for seed in (5, 5, 6):
        torch.manual_seed(seed)
        outs.append(model(input_ids=ids, attention_mask=mask).last_hidden_state)
    assert torch.equal(outs[0], outs[1]) and not torch.allclose(outs[1], outs[2])
    outs[0].sum().backward()
    assert all(p.grad is not None for p in model.encoder.parameters() if p.requires_grad)


def test_a_model_not_on_sdpa_keeps_its_attention(tmp_path):
    from transformers import AutoModel

    _tiny(tmp_path)  # writes the folder
    eager = AutoModel.from_pretrained(str(tmp_path / "tiny"), attn_implementation="eager")
    fd.use_fast_dropout(eager)
    assert eager.config._attn_implementation == "eager"
