"""Dataset registry (look-up order, downloads, checksums, offline errors) and ``polyir data``."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import urllib.error
from pathlib import Path

import pytest
from typer.testing import CliRunner

from polyir.commands.data import app
from polyir.data import registry
from polyir.data.jsonl import read_parallel_jsonl
from polyir.data.registry import (
    DataFile,
    DatasetSpec,
    get_spec,
    load_corpus,
    load_task,
    resolve_files,
    status,
)
from polyir.errors import DataFormatError, DatasetNotFoundError, UnknownLanguageError
from polyir.paths import shared_data_dir

URL = "https://example.invalid/tiny/{lang}.json"


def tiny_doc(lang: str) -> bytes:
    sentences = [f"First {lang}.", f"Second {lang}."]
    context = " ".join(sentences)
    breaks = [[0, len(sentences[0])], [len(sentences[0]) + 1, len(context)]]
    doc = {"data": [{"title": "T", "paragraphs": [{
        "context": context, "sentences": sentences, "sentence_breaks": breaks,
        "qas": [{"id": "q1", "question": f"Which {lang}?",
                 "answers": [{"answer_start": breaks[1][0], "text": "Second"}]}],
    }]}]}
    return json.dumps(doc).encode()


DOCS = {lang: tiny_doc(lang) for lang in ("en", "de")}


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Isolated cache and data folders, a registered 'tiny' dataset, and no network at all."""
    cache, data = tmp_path / "cache", tmp_path / "data"
    monkeypatch.setenv("POLYIR_CACHE_DIR", str(cache))
    monkeypatch.delenv("POLYIR_DATA_DIR", raising=False)
    spec = DatasetSpec(
        name="tiny", description="test", kind="lareqa", languages=("en", "de"),
        files=tuple(DataFile(f"tiny/{lang}.json", URL.format(lang=lang),
                             hashlib.sha256(DOCS[lang]).hexdigest(), lang) for lang in DOCS),
        license="none", source="test",
    )
    monkeypatch.setitem(registry.REGISTRY, "tiny", spec)

    def offline(url: str, timeout: float) -> io.BytesIO:
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(registry, "_open_url", offline)
    return {"cache": cache / "data", "data": data}


def put(root: Path, lang: str, content: bytes | None = None) -> Path:
    path = root / "tiny" / f"{lang}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(DOCS[lang] if content is None else content)
    return path


def serve(monkeypatch: pytest.MonkeyPatch, payloads: dict[str, bytes], calls: list[str]) -> None:
    def fake(url: str, timeout: float) -> io.BytesIO:
        calls.append(url)
        return io.BytesIO(payloads[url])

    monkeypatch.setattr(registry, "_open_url", fake)


# ----------------------------------------------------------------------------- specs


def test_builtin_specs() -> None:
    x = get_spec("xquad-r")
    assert x.languages == ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
    assert x.file_for("en").url == ("https://raw.githubusercontent.com/google-research-datasets/"
                                    "lareqa/9bc8c7fb6dd8d01d72a05a93c2cb96882b0d299c/xquad-r/en.json")
    m = get_spec("mlqa-r")
    assert m.languages == ("ar", "de", "en", "es", "hi", "vi", "zh")
    assert "354d67d1cd066854cdfbf5ad0e6105528976141d/mlqa-r/zh.json" in m.file_for("zh").url
    for spec in (x, m):
        assert all(len(f.sha256) == 64 and int(f.sha256, 16) >= 0 for f in spec.files)
        assert spec.kind in registry.LOADERS


def test_unknown_dataset_lists_known_names() -> None:
    with pytest.raises(DatasetNotFoundError) as err:
        get_spec("xquad")
    assert "'xquad'" in str(err.value) and "mlqa-r" in str(err.value) and "xquad-r" in str(err.value)


def test_unknown_or_absent_language(env: dict[str, Path]) -> None:
    with pytest.raises(UnknownLanguageError, match="el.*not present.*de, en"):
        resolve_files("tiny", languages=["el"])
    with pytest.raises(UnknownLanguageError, match="xx"):
        resolve_files("tiny", languages="xx")


# ----------------------------------------------------------------------------- look-up order


def test_explicit_data_dir_wins_over_env_and_cache(env: dict[str, Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    explicit, from_env = tmp_path / "explicit", tmp_path / "from-env"
    for root in (explicit, from_env, env["cache"]):
        put(root, "en"), put(root, "de")
    monkeypatch.setenv("POLYIR_DATA_DIR", str(from_env))
    assert resolve_files("tiny", data_dir=explicit) == {
        "en": explicit / "tiny/en.json", "de": explicit / "tiny/de.json"}
    assert resolve_files("tiny")["en"] == from_env / "tiny/en.json"


def test_cache_is_used_when_data_dir_lacks_a_file(env: dict[str, Path]) -> None:
    put(env["data"], "en")
    put(env["cache"], "de")
    files = resolve_files("tiny", data_dir=env["data"])
    assert files == {"en": env["data"] / "tiny/en.json", "de": env["cache"] / "tiny/de.json"}
    rows = {r.name: r for r in status(env["data"])}
    assert rows["tiny"].present == ["tiny/en.json", "tiny/de.json"] and rows["tiny"].missing == []
    assert rows["tiny"].where == [str(env["data"]), str(env["cache"])]


def test_missing_file_is_downloaded_into_cache_and_checked(env: dict[str, Path],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    put(env["data"], "en")
    calls: list[str] = []
    serve(monkeypatch, {URL.format(lang="de"): DOCS["de"]}, calls)
    files = resolve_files("tiny", data_dir=env["data"])
    assert calls == [URL.format(lang="de")]  # only the missing file
    assert files["de"] == env["cache"] / "tiny/de.json"
    assert files["de"].read_bytes() == DOCS["de"]
    assert sorted(p.name for p in files["de"].parent.iterdir()) == ["de.json"]  # no temp left
    # second call: found in the cache, no new download
    resolve_files("tiny", data_dir=env["data"])
    assert len(calls) == 1


def test_checksum_mismatch_on_download_deletes_temp(env: dict[str, Path],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    serve(monkeypatch, {URL.format(lang="en"): b'{"tampered": true}'}, calls)
    with pytest.raises(DataFormatError) as err:
        resolve_files("tiny", languages=["en"])
    assert "sha256 mismatch" in str(err.value) and URL.format(lang="en") in str(err.value)
    folder = env["cache"] / "tiny"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_local_checksum_only_checked_on_request(env: dict[str, Path]) -> None:
    put(env["data"], "en", DOCS["de"])  # wrong bytes under the en name
    put(env["data"], "de")
    assert resolve_files("tiny", data_dir=env["data"])["en"].is_file()  # verify off: accepted
    with pytest.raises(DataFormatError) as err:
        resolve_files("tiny", data_dir=env["data"], verify=True)
    assert str(env["data"] / "tiny/en.json") in str(err.value) and "sha256 mismatch" in str(err.value)


def test_offline_with_nothing_local_says_how_to_fix(env: dict[str, Path]) -> None:
    with pytest.raises(DatasetNotFoundError) as err:
        resolve_files("tiny")
    msg = str(err.value)
    assert "tiny/en.json" in msg and "tiny/de.json" in msg
    assert "Temporary failure in name resolution" in msg
    assert "POLYIR_DATA_DIR" in msg and "--data-dir" in msg
    assert str(env["cache"]) in msg  # the cache path a networked run would fill
    assert "\n" not in msg  # the CLI prints it as one line


def test_download_disabled(env: dict[str, Path]) -> None:
    put(env["data"], "en")
    with pytest.raises(DatasetNotFoundError, match=r"tiny/de\.json.*downloading is turned off"):
        resolve_files("tiny", data_dir=env["data"], download=False)


def test_unpinned_file_is_downloaded_and_kept_as_fetched(env: dict[str, Path],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    spec = registry.get_spec("tiny")
    files = tuple(DataFile(f.path, f.url, "" if f.language == "de" else f.sha256, f.language)
                  for f in spec.files)
    monkeypatch.setitem(registry.REGISTRY, "tiny", DatasetSpec(**{**spec.__dict__, "files": files}))
    assert [f.pinned for f in files] == [True, False]
    put(env["data"], "en")
    calls: list[str] = []
    serve(monkeypatch, {URL.format(lang="de"): b"whatever the pinned commit holds"}, calls)
    got = resolve_files("tiny", data_dir=env["data"], verify=True)  # nothing to verify it against
    assert calls == [URL.format(lang="de")] and got["de"].read_bytes() == b"whatever the pinned commit holds"


def test_downloads_go_through_pooch(env: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                   capfd: pytest.CaptureFixture[str]) -> None:
    """pooch.retrieve fetches (through _open_url) and checks: wrong bytes are refused and leave nothing,
    the published bytes land at the target with a file's usual permissions, and pooch prints nothing."""
    import os

    import pooch

    real, seen = pooch.retrieve, []

    def spy(url: str, known_hash: str | None = None, fname: str | None = None, path: object = None,
            **kwargs: object) -> str:
        seen.append((url, known_hash, fname, Path(str(path))))
        return real(url, known_hash=known_hash, fname=fname, path=path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pooch, "retrieve", spy)
    url, target = URL.format(lang="en"), env["cache"] / "tiny" / "en.json"
    expected = ("sha256:" + hashlib.sha256(DOCS["en"]).hexdigest(), "en.json", target.parent)
    calls: list[str] = []
    serve(monkeypatch, {url: b'{"data": []}'}, calls)  # not the published bytes
    with pytest.raises(DataFormatError, match="sha256 mismatch after download") as err:
        resolve_files("tiny", languages=["en"])
    assert url in str(err.value) and hashlib.sha256(b'{"data": []}').hexdigest() in str(err.value)
    assert not target.exists() and list(target.parent.iterdir()) == []
    serve(monkeypatch, {url: DOCS["en"]}, calls)
    assert resolve_files("tiny", languages=["en"]) == {"en": target}
    assert target.read_bytes() == DOCS["en"] and [p.name for p in target.parent.iterdir()] == ["en.json"]
    assert calls == [url, url] and seen == [(url, *expected)] * 2
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not the 0600 of pooch's temporary file
    assert capfd.readouterr().err == ""  # pooch logs downloads at INFO level; polyir keeps it quiet


def test_full_disk_during_download_is_one_output_error(env: dict[str, Path],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from polyir.atomic import OutputError
    from polyir.testing import full_disk_open

    serve(monkeypatch, {URL.format(lang="en"): DOCS["en"]}, [])
    monkeypatch.setattr(registry, "open", full_disk_open(), raising=False)
    target = env["cache"] / "tiny" / "en.json"
    with pytest.raises(OutputError, match="No space left on device") as err:
        resolve_files("tiny", languages=["en"])
    assert str(target) in str(err.value)
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_default_languages_and_optional_files_in_status(env: dict[str, Path],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    spec = registry.get_spec("tiny")
    monkeypatch.setitem(registry.REGISTRY, "tiny", DatasetSpec(**{**spec.__dict__, "default_languages": ("en",)}))
    put(env["data"], "en")
    task = load_task("tiny", data_dir=env["data"])  # de is registered but not loaded by default
    assert task.query_languages == ["en"]
    row = {r.name: r for r in status(env["data"])}["tiny"]
    assert row.missing == [] and row.optional_missing == ["tiny/de.json"]


def test_load_task_and_corpus_through_registry(env: dict[str, Path]) -> None:
    put(env["data"], "en"), put(env["data"], "de")
    task = load_task("tiny", data_dir=env["data"])
    assert task.name == "tiny" and len(task.queries) == 2
    assert task.relevant["en:q1"] == {"en:0:0:1", "de:0:0:1"}
    corpus = load_corpus("tiny", data_dir=env["data"], languages=["de"])
    assert corpus.language_sizes() == {"de": 1}
    assert corpus.pairs[0].entries["de"].positive == "Second de."


# ----------------------------------------------------------------------------- CLI


def test_cli_list_shows_presence(env: dict[str, Path]) -> None:
    put(env["data"], "en")
    result = CliRunner().invoke(app, ["list", "--data-dir", str(env["data"])],
                                env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.output.splitlines() if "tiny" in ln)
    assert "1/2 present" in line and "missing de" in line
    assert "xquad-r" in result.output and "mlqa-r" in result.output


def test_cli_convert_input_folder(env: dict[str, Path], tmp_path: Path) -> None:
    put(env["data"], "en"), put(env["data"], "de")
    out = tmp_path / "out" / "tiny.jsonl.gz"
    result = CliRunner().invoke(app, ["convert", "--input", str(env["data"] / "tiny"),
                                      "--output", str(out), "--languages", "de,en"])
    assert result.exit_code == 0, result.output
    with gzip.open(out, "rt", encoding="utf-8") as fh:
        assert json.loads(fh.readline())["languages"]["de"]["positive"] == "Second de."
    corpus = read_parallel_jsonl(out)
    assert corpus.language_sizes() == {"de": 1, "en": 1}


def test_cli_convert_dataset_from_env_data_dir(env: dict[str, Path], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    put(env["data"], "en"), put(env["data"], "de")
    monkeypatch.setenv("POLYIR_DATA_DIR", str(env["data"]))
    out = tmp_path / "t.jsonl"
    result = CliRunner().invoke(app, ["convert", "--dataset", "tiny", "--output", str(out),
                                      "--languages", "en"])
    assert result.exit_code == 0, result.output
    assert read_parallel_jsonl(out).language_sizes() == {"en": 1}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["convert", "--dataset", "nope", "-o", "x.jsonl"], "unknown dataset 'nope'"),
        (["convert", "-o", "x.jsonl"], "exactly one of --dataset"),
        (["convert", "--dataset", "tiny", "-o", "x.jsonl"], "POLYIR_DATA_DIR"),
        (["convert", "--dataset", "tiny", "-o", "x.jsonl", "--languages", "en,xx"], "xx"),
    ],
)
def test_cli_errors_are_one_red_line_exit_2(env: dict[str, Path], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, args: list[str],
                                            fragment: str) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args, terminal_width=80)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert fragment in lines[0]
    assert not (tmp_path / "x.jsonl").exists()


def test_cli_convert_verify_rejects_tampered_file(env: dict[str, Path], tmp_path: Path) -> None:
    put(env["data"], "en", DOCS["de"]), put(env["data"], "de")
    args = ["convert", "--dataset", "tiny", "--data-dir", str(env["data"]), "-o",
            str(tmp_path / "t.jsonl")]
    assert CliRunner().invoke(app, args).exit_code == 0  # not checked by default
    result = CliRunner().invoke(app, [*args, "--verify"])
    assert result.exit_code == 2 and "sha256 mismatch" in result.output


def test_cli_error_is_red(env: dict[str, Path]) -> None:
    result = CliRunner().invoke(app, ["convert", "--dataset", "nope", "-o", "x.jsonl"],
                                color=True, env={"FORCE_COLOR": "1", "TERM": "xterm"})
    assert result.exit_code == 2
    assert "\x1b[" in result.output and "31m" in result.output  # ANSI red


# ----------------------------------------------------------------------------- real files

REAL = shared_data_dir()


@pytest.mark.integration
@pytest.mark.skipif(REAL is None or not (REAL / "xquad-r").is_dir(),
                    reason="shared data folder not found (set POLYIR_DATA_DIR to a folder "
                           "holding xquad-r/ and mlqa-r/)")
def test_real_files_match_hardcoded_checksums(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    monkeypatch.setenv("POLYIR_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(registry, "_open_url", lambda url, timeout: pytest.fail("no download"))
    for name, n in (("xquad-r", 11), ("mlqa-r", 7)):
        files = resolve_files(name, data_dir=REAL, verify=True)
        assert len(files) == n and all(p.parent == REAL / name for p in files.values())
    task = load_task("xquad-r", data_dir=REAL, languages=["en", "tr"])
    assert len(task.queries) == 2380 and {len(r) for r in task.relevant.values()} == {2}
    assert len(task.notes["break_repairs"]) == 2
