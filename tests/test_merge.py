"""WiSE-FT merging: the two ends reproduce the models exactly, the middle is the average, bad inputs fail."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from polyir.errors import PolyirError
from polyir.models.merge import merge_encoders, merge_state_dicts
from polyir.models.resolve import load_encoder

WORDS = ["alpha", "beta", "gamma", "delta"]


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    from polyir.testing import build_tiny_model_dir

    root = tmp_path_factory.mktemp("merge")
    a = build_tiny_model_dir(root / "a", WORDS, seed=0)
    b = build_tiny_model_dir(root / "b", WORDS, seed=1)
    return load_encoder(str(a), device="cpu"), load_encoder(str(b), device="cpu"), root


def _tree(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _same(x, y) -> bool:
    sx, sy = x.st.state_dict(), y.st.state_dict()
    return sx.keys() == sy.keys() and all(torch.equal(sx[k], sy[k]) for k in sx)


def test_weight_zero_and_one_reproduce_the_models_bit_for_bit(two_models):
    base, tuned, _ = two_models
    assert not _same(base, tuned)
    assert _same(merge_encoders(base, tuned, 0.0), base)
    assert _same(merge_encoders(base, tuned, 1.0), tuned)


def test_midpoint_is_the_average_and_embeddings_change(two_models):
    base, tuned, _ = two_models
    merged = merge_encoders(base, tuned, 0.5)
    sb, st, sm = base.st.state_dict(), tuned.st.state_dict(), merged.st.state_dict()
    for k in sm:
        if sm[k].is_floating_point():
            torch.testing.assert_close(sm[k], (sb[k] + st[k]) / 2)
    texts = ["alpha beta", "gamma delta"]
    e_m = merged.encode(texts, "passage", show_progress=False)
    e_b = base.encode(texts, "passage", show_progress=False)
    assert abs(e_m - e_b).max() > 1e-4
    # the inputs are left untouched
    assert not _same(base, merged) and not _same(tuned, merged)


def test_state_dict_mismatch_is_an_error():
    a = {"w": torch.zeros(2, 2)}
    with pytest.raises(PolyirError, match="different parameters"):
        merge_state_dicts(a, {"v": torch.zeros(2, 2)}, 0.5)
    with pytest.raises(PolyirError, match="shape"):
        merge_state_dicts(a, {"w": torch.zeros(3, 2)}, 0.5)
    with pytest.raises(PolyirError, match=r"\[0, 1\]"):
        merge_state_dicts(a, a, 1.5)


def test_integer_buffers_come_from_the_tuned_model():
    out = merge_state_dicts({"ids": torch.tensor([0, 1])}, {"ids": torch.tensor([0, 1])}, 0.3)
    assert out["ids"].dtype == torch.int64


def test_cli_writes_a_loadable_folder(two_models):
    from polyir.cli import app

    base, tuned, root = two_models
    out = root / "merged"
    res = CliRunner().invoke(app, ["merge", str(root / "a"), str(root / "b"), "--weight", "1", "--output", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "merge.json").is_file()
    assert _same(load_encoder(str(out), device="cpu"), tuned)
    res = CliRunner().invoke(app, ["merge", str(root / "a"), str(root / "missing"), "-w", "0.5",
                                   "-o", str(root / "merged-missing")])
    assert res.exit_code == 2 and "does not exist" in res.output
    assert not (root / "merged-missing").exists()


def test_overwrite_swaps_in_the_new_model_and_leaves_no_temp_folder(two_models, tmp_path):
    from polyir.cli import app

    base, tuned, root = two_models
    out = tmp_path / "merged"
    args = ["merge", str(root / "a"), str(root / "b"), "-o", str(out)]
    assert CliRunner().invoke(app, [*args, "-w", "0"]).exit_code == 0
    refused = CliRunner().invoke(app, [*args, "-w", "1"])
    assert refused.exit_code == 2 and "pass --overwrite" in refused.output
    assert _same(load_encoder(str(out), device="cpu"), base)  # untouched
    res = CliRunner().invoke(app, [*args, "-w", "1", "--overwrite"])
    assert res.exit_code == 0, res.output
    assert _same(load_encoder(str(out), device="cpu"), tuned)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged"]


def test_a_failed_save_leaves_the_old_model_whole(two_models, tmp_path, monkeypatch):
    """safetensors reports a full disk as its own error: it becomes one OutputError, the old folder stays."""
    from safetensors import SafetensorError

    from polyir.atomic import OutputError
    from polyir.models.encoder import Encoder
    from polyir.models.merge import merge_models

    _, _, root = two_models
    out = merge_models(str(root / "a"), str(root / "b"), 0.0, tmp_path / "merged")
    before = _tree(out)

    def full_disk(self, path):
        (path / "config.json").write_text("{}")  # the configs get written, the weights do not
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                              'message: "No space left on device" })')

    monkeypatch.setattr(Encoder, "save", full_disk)
    with pytest.raises(OutputError, match=r"cannot write .*merged: No space left on device$"):
        merge_models(str(root / "a"), str(root / "b"), 1.0, out, overwrite=True)
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged"]
