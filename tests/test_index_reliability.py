"""Index reliability (#13): --overwrite keeps the old index until the new one is complete, resume
notices edited texts, damaged index files are refused on load, write failures and bad options
give one-line errors before any encoding."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from polyir.atomic import OutputError
from polyir.errors import DataFormatError, PolyirError
from polyir.index import backends as backends_mod
from polyir.index import store as store_mod
from polyir.index.corpus import Passage, read_corpus_jsonl
from polyir.index.encode import encode_shards, resolve_rank
from polyir.index.search import search
from polyir.index.store import build_index, open_index
from polyir.models.resolve import load_encoder

pytestmark = pytest.mark.filterwarnings("ignore:Failed to obtain server version")

QUERY = "who was the first emperor of rome"


def passages(edit: dict[str, str] | None = None) -> list[Passage]:
    from test_index import make_passages

    edit = edit or {}
    return [Passage(p.id, p.language, edit.get(p.id, p.text), p.title) for p in make_passages()]


@pytest.fixture(scope="module")
def encoder(tiny_model_dir):
    return load_encoder(str(tiny_model_dir), device="cpu")


class Counting:
    """An encoder wrapper that counts encoded texts and can fail on a given call."""

    def __init__(self, inner, fail_on_call: int | None = None, exc: BaseException | None = None):
        self.inner, self.calls, self.texts = inner, 0, 0
        self.fail_on_call, self.exc = fail_on_call, exc
        self.spec, self.settings, self.dim = inner.spec, inner.settings, inner.dim

    def fingerprint(self):
        return self.inner.fingerprint()

    def encode(self, texts, kind, **kw):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise self.exc
        self.texts += len(texts)
        return self.inner.encode(texts, kind, **kw)


def results(folder: Path, encoder) -> list[tuple[str, float]]:
    with open_index(folder, encoder) as index:
        return [(h.id, round(h.score, 5)) for h in search(index, encoder, QUERY, k=5)]


@pytest.fixture()
def old_index(tmp_path, encoder):
    """A flat index in tmp_path/idx and its answers to QUERY."""
    folder = tmp_path / "idx"
    build_index(folder, passages(), encoder, shard_size=10, show_progress=False).index.close()
    return folder, results(folder, encoder)


# ---------------------------------------------------------------- 1. --overwrite builds beside, swaps at the end


def test_overwrite_with_bad_backend_parameter_fails_before_encoding_and_keeps_old_index(old_index, encoder):
    folder, before = old_index
    counting = Counting(encoder)
    with pytest.raises(PolyirError, match="m=7 must divide the vector dimension 32"):
        build_index(folder, passages(), counting, backend="ivfpq", backend_params={"m": 7}, overwrite=True,
                    show_progress=False)
    assert counting.texts == 0  # checked against the model's dimension before any encoding
    assert results(folder, encoder) == before


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), RuntimeError("boom")])
def test_interrupt_mid_encoding_keeps_old_index_then_resumes(old_index, encoder, exc):
    folder, before = old_index
    edited = passages({"en-2": "the red cat sat"})
    counting = Counting(encoder, fail_on_call=2, exc=exc)  # shard 0 done, fails in shard 1
    with pytest.raises(type(exc)):
        build_index(folder, edited, counting, shard_size=10, overwrite=True, show_progress=False)
    assert results(folder, encoder) == before
    counting = Counting(encoder)
    result = build_index(folder, edited, counting, shard_size=10, overwrite=True, show_progress=False)
    assert result.encoding.skipped == [0] and counting.texts == 14  # shard 0 reused
    assert search(result.index, encoder, "the red cat sat", k=1)[0].id == "en-2"
    result.index.close()


def test_backend_failure_after_encoding_keeps_old_index(old_index, encoder, monkeypatch):
    folder, before = old_index

    def broken(self, *a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(backends_mod.HNSWBackend, "build", broken)
    with pytest.raises(KeyboardInterrupt):
        build_index(folder, passages(), encoder, backend="hnsw", shard_size=10, overwrite=True, show_progress=False)
    assert results(folder, encoder) == before
    assert json.loads((folder / "index.json").read_text())["backend"]["name"] == "flat"
    assert not [p for p in folder.iterdir() if p.name.startswith((".staging-", ".replaced-"))]


def test_failure_while_swapping_puts_the_old_index_back(old_index, encoder, monkeypatch):
    folder, before = old_index
    real = store_mod.os.replace
    calls = []

    def flaky(src, dst):
        if Path(src).parent.name.startswith(".staging-") or Path(dst).parent.name.startswith(".replaced-"):
            calls.append(dst)
            if len(calls) == 6:  # the old 4 entries are out, 1 new one is in: fail on the 2nd move in
                raise OSError(errno.EIO, "Input/output error")
        return real(src, dst)

    monkeypatch.setattr(store_mod.os, "replace", flaky)
    with pytest.raises(OutputError, match=r"cannot move the new index into .*idx: Input/output error"):
        build_index(folder, passages({"en-2": "der hund"}), encoder, backend="hnsw", shard_size=10,
                    overwrite=True, show_progress=False)
    monkeypatch.undo()
    assert results(folder, encoder) == before
    assert sorted(p.name for p in folder.iterdir()) == ["backend", "index.json", "passages.jsonl", "shards", "vectors.npy"]


def test_overwrite_replaces_and_keeps_foreign_files(old_index, encoder):
    folder, _ = old_index
    (folder / "NOTES.txt").write_text("mine")
    result = build_index(folder, passages({"en-2": "der hund"}), encoder, backend="hnsw", overwrite=True,
                         show_progress=False)
    result.index.close()
    assert (folder / "NOTES.txt").read_text() == "mine"
    assert sorted(p.name for p in folder.iterdir()) == ["NOTES.txt", "backend", "index.json", "passages.jsonl", "vectors.npy"]
    assert json.loads((folder / "index.json").read_text())["backend"]["name"] == "hnsw"


# ---------------------------------------------------------------- 3. resume notices edited texts


def test_text_edit_invalidates_only_its_shard(tmp_path, encoder):
    ids = [p.id for p in passages()]
    original = [p.text for p in passages()]
    edited = [p.text for p in passages({"de-1": "the river is long"})]  # de-1 is position 9: shard 0 of size 5 is 0-4
    first = encode_shards(encoder, original, ids, tmp_path / "s", shard_size=5, show_progress=False)
    assert first.encoded == [0, 1, 2, 3, 4]
    counting = Counting(encoder)
    again = encode_shards(counting, edited, ids, tmp_path / "s", shard_size=5, show_progress=False)
    assert again.encoded == [1] and again.skipped == [0, 2, 3, 4] and counting.texts == 5


def test_resumed_build_encodes_the_edited_text(tmp_path, encoder):
    folder = tmp_path / "idx"
    counting = Counting(encoder, fail_on_call=3, exc=KeyboardInterrupt())  # killed after 2 of 3 shards
    with pytest.raises(KeyboardInterrupt):
        build_index(folder, passages(), counting, shard_size=10, show_progress=False)
    edited = passages({"en-1": "hello world"})  # en-1 is in shard 0, already encoded with the old text
    result = build_index(folder, edited, encoder, shard_size=10, show_progress=False)
    assert result.encoding.encoded == [0, 2] and result.encoding.skipped == [1]
    want = encoder.encode(["hello world"], "passage", show_progress=False)[0]
    np.testing.assert_allclose(result.index.vectors[1], want, atol=1e-5)
    result.index.close()


def test_stale_shard_of_another_rank_is_not_built_into_the_index(tmp_path, encoder):
    folder = tmp_path / "idx"
    r1 = build_index(folder, passages(), encoder, shard_size=10, rank=1, world_size=2, show_progress=False)
    assert r1.index is None and r1.encoding.encoded == [1]
    # Rank 0 runs on a corpus where de-5 (position 13, in rank 1's shard 1) was edited meanwhile.
    r0 = build_index(folder, passages({"de-5": "el perro"}), encoder, shard_size=10, rank=0, world_size=2,
                     show_progress=False)
    assert r0.index is None and r0.encoding.encoded == [0, 2] and r0.encoding.missing == [1]


# ---------------------------------------------------------------- 5. damaged index files are refused on load


def _damage(folder: Path, fn) -> None:
    vectors = np.load(folder / "vectors.npy")
    np.save(folder / "vectors.npy", fn(vectors))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda v: v[:-1], r"vectors\.npy: float32 vectors of shape \(23, 32\), expected float32 of shape \(24, 32\)"),
        (lambda v: v.T.copy(), r"vectors\.npy: float32 vectors of shape \(32, 24\)"),
        (lambda v: v[:, :16].copy(), r"shape \(24, 16\)"),
        (lambda v: v.astype(np.float64), r"vectors\.npy: float64 vectors"),
        (lambda v: np.where(np.arange(24)[:, None] >= 20, 0, v).astype(np.float32),
         r"vectors\.npy: 4 bad row\(s\), first row 20 \(passage 'es-4'\) with norm 0\.0000"),
        (lambda v: np.where(np.arange(24)[:, None] == 3, np.nan, v).astype(np.float32),
         r"first row 3 \(passage 'en-3'\) with non-finite values"),
    ],
)
def test_damaged_vectors_are_refused_with_the_file_named(old_index, encoder, damage, message):
    folder, _ = old_index
    _damage(folder, damage)
    with pytest.raises(PolyirError, match=message):
        open_index(folder)


def test_other_damage_is_refused(old_index):
    folder, _ = old_index
    (folder / "vectors.npy").write_bytes(b"not numpy")
    with pytest.raises(PolyirError, match=r"vectors\.npy: not a readable \.npy file"):
        open_index(folder)


def test_passages_file_damage_is_refused(old_index):
    folder, _ = old_index
    lines = (folder / "passages.jsonl").read_text(encoding="utf-8").splitlines()
    (folder / "passages.jsonl").write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    with pytest.raises(PolyirError, match=r"passages\.jsonl: 23 passages, index\.json says 24"):
        open_index(folder)
    (folder / "passages.jsonl").write_text("\n".join(lines[:-1] + ["{oops"]) + "\n", encoding="utf-8")
    with pytest.raises(PolyirError, match=r"passages\.jsonl: line 24: not a passage record"):
        open_index(folder)


def test_search_command_on_damaged_index_is_one_line(old_index):
    from polyir.commands.index import search_command

    folder, _ = old_index
    _damage(folder, lambda v: v[:-1])
    app = typer.Typer()
    app.command()(search_command)
    res = CliRunner().invoke(app, [str(folder), "hello", "--languages", "de"])
    assert res.exit_code == 2 and "vectors.npy" in res.output and "Traceback" not in res.output


# ---------------------------------------------------------------- 6. write failures


def _no_space_for(name: str, monkeypatch) -> None:
    real = np.save

    def save(file, arr, *a, **kw):
        if name in str(getattr(file, "name", file)):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(file, arr, *a, **kw)

    monkeypatch.setattr(np, "save", save)


def test_full_disk_writing_vectors_names_the_file_and_keeps_old_index(old_index, encoder, monkeypatch):
    folder, before = old_index
    _no_space_for("vectors.npy", monkeypatch)
    with pytest.raises(OutputError, match=r"cannot write .*\.staging-\d+/vectors\.npy: No space left on device"):
        build_index(folder, passages({"en-2": "x"}), encoder, overwrite=True, show_progress=False)
    monkeypatch.undo()
    assert results(folder, encoder) == before
    assert not list(folder.rglob("*.tmp"))


def test_full_disk_writing_a_shard_names_the_file(tmp_path, encoder, monkeypatch):
    _no_space_for("shard-00000.npy", monkeypatch)
    with pytest.raises(OutputError, match=r"cannot write .*shards/shard-00000\.npy: No space left on device"):
        build_index(tmp_path / "idx", passages(), encoder, show_progress=False)


def _index_app():
    from polyir.commands.index import index_command

    app = typer.Typer()
    app.command()(index_command)
    return app


def _corpus(tmp_path: Path, lines: list[str] | None = None) -> Path:
    path = tmp_path / "c.jsonl"
    if lines is None:
        lines = [json.dumps(p.to_dict()) for p in passages()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _run_index(tiny_model_dir, corpus: Path, output: Path, *extra: str):
    return CliRunner().invoke(_index_app(), ["--model", str(tiny_model_dir), "--corpus", str(corpus), "--output",
                                             str(output), "--no-progress", "--device", "cpu", *extra])


def test_index_command_write_failures_are_one_line(tmp_path, tiny_model_dir, monkeypatch):
    corpus = _corpus(tmp_path)
    (tmp_path / "afile").write_text("x")
    res = _run_index(tiny_model_dir, corpus, tmp_path / "afile")
    assert res.exit_code == 2 and "afile is a file, not a folder" in res.output and "Traceback" not in res.output
    import polyir.atomic as atomic

    readonly, access = tmp_path / "ro", atomic.os.access
    readonly.mkdir()  # read-only, as os.access says (tests may run as root, for whom chmod changes nothing)
    monkeypatch.setattr(atomic.os, "access", lambda p, mode: Path(p) != readonly and access(p, mode))
    res = _run_index(tiny_model_dir, corpus, readonly / "idx")
    assert res.exit_code == 2 and "permission denied" in res.output
    monkeypatch.undo()
    _no_space_for("shard-00000.npy", monkeypatch)
    res = _run_index(tiny_model_dir, corpus, tmp_path / "idx")
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "shard-00000.npy: No space left on device" in " ".join(res.output.split())


# ---------------------------------------------------------------- 7. bad input rejected before encoding


def test_lone_surrogate_is_rejected_at_validation(tmp_path, tiny_model_dir):
    line = '{"id": "a", "language": "en", "text": "ab\\ud800c"}'
    corpus = _corpus(tmp_path, [json.dumps({"id": "z", "language": "en", "text": "ok"}), line])
    with pytest.raises(DataFormatError, match=r"c\.jsonl: line 2: \"text\" holds a lone surrogate '\\ud800' at character 3"):
        read_corpus_jsonl(corpus)
    res = _run_index(tiny_model_dir, corpus, tmp_path / "idx")
    assert res.exit_code == 2 and "line 2" in res.output and not (tmp_path / "idx" / "shards").exists()
    meta = '{"id": "a", "language": "en", "text": "x", "metadata": {"k": "\\udfff"}}'
    with pytest.raises(DataFormatError, match=r"line 1: \"metadata\" holds a lone surrogate"):
        read_corpus_jsonl(_corpus(tmp_path, [meta]))
    with pytest.raises(PolyirError, match="passage 'a': text holds a lone surrogate"):
        build_index(tmp_path / "lib", [Passage("a", "en", "x\ud800")], load_encoder(str(tiny_model_dir)), show_progress=False)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--backend", "ivfpq", "--pq-m", "7"], "m=7 must divide the vector dimension 32"),
        (["--backend", "ivfpq", "--nlist", "500"], "nlist must be between 1 and the number of vectors (24), not 500"),
        (["--backend", "hnsw", "--hnsw-m", "-3"], "hnsw: M must be an integer of at least 1, not -3"),
        (["--backend", "hnsw", "--ef-search", "0"], "efSearch must be an integer of at least 1, not 0"),
        (["--num-shards", "0"], "'--num-shards': Input should be greater than or equal to 1"),
        (["--shard-rank", "-1"], "'--shard-rank': Input should be greater than or equal to 0"),
        (["--shard-rank", "2", "--num-shards", "2"], "shard rank 2 is not within 0..1"),
    ],
)
def test_bad_options_fail_before_encoding(tmp_path, tiny_model_dir, options, message):
    res = _run_index(tiny_model_dir, _corpus(tmp_path), tmp_path / "idx", *options)
    assert res.exit_code == 2 and message in " ".join(res.output.split()), res.output
    assert not (tmp_path / "idx" / "shards").exists()


def test_num_shards_zero_message():
    with pytest.raises(PolyirError, match=r"must be at least 1, not 0"):
        resolve_rank(0, 0)


@pytest.mark.parametrize("value", ["-2", "0"])
def test_threads_must_be_positive(value):
    from polyir.cli import app

    res = CliRunner().invoke(app, ["--threads", value, "models"])
    assert res.exit_code == 2 and "must be at least 1" in " ".join(res.output.split())
    assert not isinstance(res.exception, RuntimeError)


def test_ctrl_c_in_index_command_is_one_line(tmp_path, tiny_model_dir, monkeypatch):
    import polyir.index.store as store

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "build_index", interrupted)
    res = _run_index(tiny_model_dir, _corpus(tmp_path), tmp_path / "idx")
    assert res.exit_code == 130 and "interrupted: finished shards are kept" in " ".join(res.output.split())
