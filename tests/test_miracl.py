"""MIRACL: readers, registry, trec_eval-style metrics on hand-worked cases, exact search, and the
whole ``polyir evaluate --dataset miracl`` path on a made-up corpus in MIRACL's exact format."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import random
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from polyir.cli import app
from polyir.data import registry
from polyir.data.miracl import (
    MIRACL_LANGUAGES,
    check_language,
    corpus_shards,
    find_corpus_folder,
    passage_text,
    qrels_name,
    read_corpus,
    read_qrels,
    read_topics,
    topics_name,
)
from polyir.data.registry import DataFile, DatasetSpec, get_spec, resolve_file_sets
from polyir.errors import (
    DataFormatError,
    DatasetNotFoundError,
    EmptySelectionError,
    PolyirError,
    UnknownLanguageError,
)
from polyir.evaluation.miracl import (
    MiraclOptions,
    TopK,
    evaluate_language,
    evaluate_miracl,
    trec_metrics,
    trec_order,
)
from polyir.paths import shared_data_dir

runner = CliRunner()
LOG2 = math.log2

# ----------------------------------------------------------------------------- made-up MIRACL data

VOCAB = ("cat dog park rome berlin paris madrid river city emperor capital old new big small red "
         "blue green long hello world mat").split()


def make_passages(n: int, seed: int, planted: dict[str, str] | None = None) -> list[dict[str, str]]:
    """``n`` MIRACL records with unique contents; ``planted`` docid -> exact content (title text)."""
    rng = random.Random(seed)
    planted = planted or {}
    records, seen = [], set(planted.values())
    article = 10
    while len(records) < n:
        for part in range(3):
            docid = f"{article}#{part}"
            if docid in planted:
                title, text = planted[docid].split(" ", 1)
            else:
                title = rng.choice(VOCAB)
                text = " ".join(rng.choice(VOCAB) for _ in range(rng.randint(4, 8)))
                if passage_text(title, text) in seen:
                    continue
            seen.add(passage_text(title, text))
            records.append({"docid": docid, "title": title, "text": text})
        article += 10
    return records[:n]


def write_shards(folder: Path, records: list[dict[str, str]], sizes: list[int]) -> list[Path]:
    """Write records as docs-<i>.jsonl.gz shards of the given sizes (MIRACL's layout)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, start = [], 0
    for i, size in enumerate(sizes):
        path = folder / f"docs-{i}.jsonl.gz"
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            for rec in records[start:start + size]:
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        paths.append(path)
        start += size
    assert start == len(records)
    return paths


# Planted queries: each query's text is exactly the content ("title text") of one relevant passage,
# so with no prefixes the tiny model scores that passage 1.0 and ranks it first.
SW_PLANT = {"10#0": "paris capital city of old rome", "20#1": "river long green park big"}
SW_TOPICS = {
    "1": SW_PLANT["10#0"],  # relevant 10#0 -> nDCG@10 = 1, R@100 = 1
    "2": "dog ran in the park",  # its relevant passage is not in the corpus -> 0, 0
    "3": "who was first emperor",  # judged, but only rel = 0 -> left out of the averages
    "4": SW_PLANT["20#1"],  # relevant 20#1 (rank 1) and 404#0 (absent) -> see SW_EXPECTED
    "5": "small red mat",  # no judgment at all -> left out
}
SW_QRELS = [("1", "10#0", 1), ("1", "30#2", 0), ("2", "999#0", 1), ("2", "10#1", 0),
            ("3", "30#1", 0), ("4", "20#1", 1), ("4", "404#0", 1)]
SW_EXPECTED = {
    "ndcg@10": {"1": 1.0, "2": 0.0, "4": 1.0 / (1.0 + 1.0 / LOG2(3))},
    "recall@100": {"1": 1.0, "2": 0.0, "4": 0.5},
}
YO_PLANT = {"10#1": "berlin emperor old hello", "20#0": "madrid blue world mat cat"}
YO_TOPICS = {"7": YO_PLANT["10#1"], "9": YO_PLANT["20#0"]}
YO_QRELS = [("7", "10#1", 1), ("7", "20#2", 0), ("9", "20#0", 1)]


def write_miracl(root: Path, lang: str, topics: dict[str, str], qrels: list[tuple[str, str, int]],
                 records: list[dict[str, str]], sizes: list[int]) -> None:
    """Topics and qrels as registry paths (<root>/miracl/...), shards under <root>/miracl-corpus."""
    (root / "miracl").mkdir(parents=True, exist_ok=True)
    (root / "miracl" / topics_name(lang)).write_text(
        "".join(f"{q}\t{t}\n" for q, t in topics.items()), encoding="utf-8")
    (root / "miracl" / qrels_name(lang)).write_text(
        "".join(f"{q}\tQ0\t{d}\t{r}\n" for q, d, r in qrels), encoding="utf-8")
    write_shards(root / "miracl-corpus" / f"miracl-corpus-v1.0-{lang}", records, sizes)


@pytest.fixture()
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data folder with made-up sw (130 passages in 3 gzipped shards) and yo (12 in 1) data."""
    monkeypatch.setenv("POLYIR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("POLYIR_DATA_DIR", raising=False)
    monkeypatch.setattr(registry, "_open_url", _offline)
    root = tmp_path / "data"
    write_miracl(root, "sw", SW_TOPICS, SW_QRELS, make_passages(130, 1, SW_PLANT), [50, 50, 30])
    write_miracl(root, "yo", YO_TOPICS, YO_QRELS, make_passages(12, 2, YO_PLANT), [12])
    return root


def _offline(url: str, timeout: float) -> io.BytesIO:
    raise urllib.error.URLError("Temporary failure in name resolution")


# ----------------------------------------------------------------------------- readers


def test_topics_reader(tmp_path: Path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text("6\tBandari kubwa iko wapi?\n\n8\tJe, mji mkuu\tni gani?\n", encoding="utf-8")
    assert read_topics(path) == {"6": "Bandari kubwa iko wapi?", "8": "Je, mji mkuu\tni gani?"}
    for body, message in [("6 no tab here\n", "line 1: expected 'qid<TAB>query'"),
                          ("6\tok\n6\tagain\n", "line 2: duplicate query id '6' (first on line 1)"),
                          ("6\tok\n7\t  \n", "line 2: query '7' has no text"),
                          ("", "no topics")]:
        path.write_text(body, encoding="utf-8")
        with pytest.raises(DataFormatError) as err:
            read_topics(path)
        assert str(path) in str(err.value) and message in str(err.value)


def test_qrels_reader_tabs_or_spaces_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "q.tsv"
    path.write_text("6\tQ0\t32589#0\t1\n6 0 1676#26 0\n8\tQ0\t9800#4\t2\n", encoding="utf-8")
    assert read_qrels(path) == {"6": {"32589#0": 1, "1676#26": 0}, "8": {"9800#4": 2}}
    for body, message in [("6\tQ0\t1#0\n", "line 1: expected 4 columns"),
                          ("6\tQ0\t1#0\tyes\n", "line 1: relevance 'yes' is not an integer"),
                          ("6\tQ0\t1#0\t1\n6\tQ0\t1#0\t0\n", "line 2: (6, 1#0) judged twice"),
                          ("\n", "no judgments")]:
        path.write_text(body, encoding="utf-8")
        with pytest.raises(DataFormatError) as err:
            read_qrels(path)
        assert str(path) in str(err.value) and message in str(err.value)


def test_corpus_reader_shards_gzip_plain_and_natural_order(tmp_path: Path) -> None:
    folder = tmp_path / "miracl-corpus-v1.0-sw"
    records = make_passages(9, 3)
    write_shards(folder, records[:6], [3, 3])
    (folder / "docs-0.jsonl.gz").rename(folder / "docs-10.jsonl.gz")  # docs-1 < docs-2 < docs-10
    with open(folder / "docs-2.jsonl", "w", encoding="utf-8") as fh:  # a plain shard
        fh.writelines(json.dumps(r) + "\n" for r in records[6:])
    (folder / "README.txt").write_text("not a shard")
    assert [p.name for p in corpus_shards(folder)] == ["docs-1.jsonl.gz", "docs-2.jsonl", "docs-10.jsonl.gz"]
    passages = read_corpus(folder)
    assert [p.docid for p in passages] == [r["docid"] for r in records[3:6] + records[6:] + records[:3]]
    first = passages[0]
    assert first.content == f"{records[3]['title']} {records[3]['text']}"


def test_passage_text_join() -> None:
    assert passage_text("Albedo", "Albedo is the measure ...") == "Albedo Albedo is the measure ..."
    assert passage_text("", "only text") == "only text"
    assert passage_text("Only title", " ") == "Only title"


@pytest.mark.parametrize(("line", "message"), [
    ('{"docid": "1#0", "title": "T", "text": "x"', "not valid JSON"),
    ('{"title": "T", "text": "x"}', 'missing or empty "docid"'),
    ('{"docid": "1#0", "title": "T", "text": "x", "url": "u"}', "unknown key(s) 'url'"),
    ('{"docid": "1#0", "title": "T"}', 'missing "text"'),
    ('{"docid": "1#0", "title": 3, "text": "x"}', '"title" must be a string'),
    ('{"docid": "1#0", "title": "", "text": " "}', "has neither title nor text"),
    ('["1#0", "T", "x"]', "expected a JSON object"),
])
def test_malformed_corpus_record_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    path = folder / "docs-0.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write('{"docid": "0#0", "title": "T", "text": "fine"}\n\n' + line + "\n")
    with pytest.raises(DataFormatError) as err:
        read_corpus(folder)
    assert f"{path}: line 3" in str(err.value) and message in str(err.value)


def test_duplicate_docid_across_shards_and_empty_corpus(tmp_path: Path) -> None:
    folder = tmp_path / "dup"
    rec = {"docid": "5#0", "title": "T", "text": "x"}
    write_shards(folder, [rec, dict(rec)], [1, 1])
    with pytest.raises(DataFormatError, match=r"docs-1\.jsonl\.gz: line 1: duplicate docid '5#0'"):
        read_corpus(folder)
    empty = tmp_path / "empty"
    write_shards(empty, [], [0, 0])
    with pytest.raises(DataFormatError, match="the corpus is empty"):
        read_corpus(empty)
    (tmp_path / "none").mkdir()
    with pytest.raises(DataFormatError, match="no corpus shard"):
        corpus_shards(tmp_path / "none")
    bad = tmp_path / "bad" / "docs-0.jsonl.gz"
    bad.parent.mkdir()
    bad.write_bytes(b"this is not gzip\n")
    with pytest.raises(DataFormatError, match=r"docs-0\.jsonl\.gz: line 1: cannot read"):
        read_corpus(bad.parent)


def test_languages_and_corpus_lookup(tmp_path: Path) -> None:
    assert len(MIRACL_LANGUAGES) == 18 and check_language("yo") == "yo"
    with pytest.raises(UnknownLanguageError, match="MIRACL has no language 'el'"):
        check_language("el")
    lang_dir = tmp_path / "dl" / "miracl-corpus-v1.0-sw"
    write_shards(lang_dir, make_passages(3, 0), [3])
    assert find_corpus_folder("sw", tmp_path / "dl", []) == lang_dir  # the parent folder
    assert find_corpus_folder("sw", lang_dir, []) == lang_dir  # the language folder itself
    root = tmp_path / "root"
    write_shards(root / "miracl-corpus" / "miracl-corpus-v1.0-sw", make_passages(3, 0), [3])
    found = find_corpus_folder("sw", None, [tmp_path / "elsewhere", root])  # data roots in order
    assert found == root / "miracl-corpus" / "miracl-corpus-v1.0-sw"
    with pytest.raises(DatasetNotFoundError) as err:
        find_corpus_folder("yo", tmp_path / "dl", [])
    assert "miracl-corpus-v1.0-yo" in str(err.value)
    assert "https://huggingface.co/datasets/miracl/miracl-corpus/tree/main/miracl-corpus-v1.0-yo" in str(err.value)
    with pytest.raises(DatasetNotFoundError):  # a language folder given for another language
        find_corpus_folder("yo", lang_dir, [])


# ----------------------------------------------------------------------------- registry


def test_registered_spec_has_topics_and_qrels_for_18_languages() -> None:
    spec = get_spec("miracl")
    assert spec.kind == "miracl" and spec.languages == MIRACL_LANGUAGES
    assert len(spec.files) == 36
    sw = {f.role: f for f in spec.files_for("sw")}
    assert sw["topics"].path == "miracl/topics.miracl-v1.0-sw-dev.tsv"
    assert sw["topics"].url == ("https://huggingface.co/datasets/miracl/miracl/resolve/main/"
                                "miracl-v1.0-sw/topics/topics.miracl-v1.0-sw-dev.tsv")
    assert sw["qrels"].url.endswith("/miracl-v1.0-sw/qrels/qrels.miracl-v1.0-sw-dev.tsv")
    assert sw["topics"].sha256.startswith("15cde3f614cb75b3") and sw["qrels"].size == 89581
    assert all(len(f.sha256) == 64 for f in spec.files)
    with pytest.raises(DatasetNotFoundError, match="no task view"):
        registry.load_task("miracl", languages="sw")


def _tiny_miracl_spec(monkeypatch: pytest.MonkeyPatch, payloads: dict[str, bytes]) -> None:
    files = []
    for lang in ("sw",):
        for role, name in (("topics", topics_name(lang)), ("qrels", qrels_name(lang))):
            url = f"https://example.invalid/miracl/{name}"
            files.append(DataFile(f"tiny-miracl/{name}", url, hashlib.sha256(payloads[url]).hexdigest(),
                                  lang, role=role))
    spec = DatasetSpec(name="tiny-miracl", description="test", kind="miracl", languages=("sw",),
                       files=tuple(files), license="none")
    monkeypatch.setitem(registry.REGISTRY, "tiny-miracl", spec)


def test_topics_and_qrels_download_into_cache_and_are_checked(
        data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path) -> None:
    topics = (data / "miracl" / topics_name("sw")).read_bytes()
    qrels = (data / "miracl" / qrels_name("sw")).read_bytes()
    base = "https://example.invalid/miracl/"
    payloads = {base + topics_name("sw"): topics, base + qrels_name("sw"): qrels}
    _tiny_miracl_spec(monkeypatch, payloads)
    calls: list[str] = []

    def fake(url: str, timeout: float) -> io.BytesIO:
        calls.append(url)
        return io.BytesIO(payloads[url])

    monkeypatch.setattr(registry, "_open_url", fake)
    files = resolve_file_sets("tiny-miracl", data_dir=tmp_path / "empty", languages="sw")
    cache = tmp_path / "cache" / "data" / "tiny-miracl"
    assert files == {"sw": {"topics": cache / topics_name("sw"), "qrels": cache / qrels_name("sw")}}
    assert sorted(calls) == sorted(payloads) and files["sw"]["qrels"].read_bytes() == qrels
    # downloaded topics + qrels, corpus from --corpus: the evaluation runs on them
    from polyir.models.resolve import load_encoder

    result = evaluate_miracl(load_encoder(str(tiny_model_dir), device="cpu"), ["sw"],
                             data_dir=tmp_path / "empty", corpus_dir=data / "miracl-corpus",
                             options=MiraclOptions(show_progress=False), dataset="tiny-miracl")
    assert result["per_language"]["sw"]["queries"] == 3 and len(calls) == 2  # no second download

    # a tampered download is discarded
    for p in cache.iterdir():
        p.unlink()
    payloads[base + qrels_name("sw")] = qrels + b"6\tQ0\tx#0\t1\n"
    with pytest.raises(DataFormatError, match="sha256 mismatch after download"):
        resolve_file_sets("tiny-miracl", data_dir=tmp_path / "empty", languages="sw")
    assert not (cache / qrels_name("sw")).exists()
    assert not [p for p in cache.iterdir() if p.name.endswith(".part")]


def test_offline_without_files_says_what_to_do(data: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as err:
        resolve_file_sets("miracl", data_dir=tmp_path / "nothing", languages="yo")
    msg = str(err.value)
    assert "topics.miracl-v1.0-yo-dev.tsv" in msg and "qrels.miracl-v1.0-yo-dev.tsv" in msg
    assert "huggingface.co/datasets/miracl/miracl/resolve/main/miracl-v1.0-yo" in msg


# ----------------------------------------------------------------------------- metrics, by hand


def _run(*ranked: str) -> list[tuple[str, float]]:
    """A ranked list with strictly decreasing scores."""
    return [(d, 1.0 - i / 1000) for i, d in enumerate(ranked)]


def _fill(n: int, prefix: str = "n") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def test_ndcg10_and_recall100_on_hand_worked_cases() -> None:
    qrels = {
        # relevant at ranks 1 and 3 out of 2 relevant
        "a": {"r1": 1, "r2": 1},
        # graded: gain = rel (linear); the rel-2 document at rank 2
        "b": {"g2": 2, "g1": 1},
        # a judged non-relevant (rel 0) document at rank 1 is not a gain
        "c": {"z": 0, "r": 1},
        # relevant at rank 1 and rank 11 (beyond the nDCG cut, within the recall cut)
        "d": {"r1": 1, "r11": 1},
        # three relevant at ranks 50, 100, 101
        "e": {"x50": 1, "x100": 1, "x101": 1},
        # two relevant, one never retrieved: it still counts in the ideal DCG and in recall
        "f": {"r": 1, "missing": 1},
    }
    n = _fill(120)
    run = {
        "a": _run("r1", "n0", "r2", *n[1:10]),
        "b": _run("g1", "g2", *n[:8]),
        "c": _run("z", "r", *n[:8]),
        "d": _run("r1", *n[:9], "r11", *n[9:20]),
        "e": _run(*n[:49], "x50", *n[49:98], "x100", "x101", *n[98:110]),
        "f": _run("r", *n[:150]),
    }
    got = trec_metrics(qrels, run)
    expected_ndcg = {
        "a": (1 + 1 / LOG2(4)) / (1 + 1 / LOG2(3)),
        "b": (1 / LOG2(2) + 2 / LOG2(3)) / (2 / LOG2(2) + 1 / LOG2(3)),
        "c": (1 / LOG2(3)) / 1.0,
        "d": 1 / (1 + 1 / LOG2(3)),
        "e": 0.0,
        "f": 1 / (1 + 1 / LOG2(3)),
    }
    expected_recall = {"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0, "e": 2 / 3, "f": 0.5}
    for q in qrels:
        assert got["ndcg@10"][q] == pytest.approx(expected_ndcg[q], abs=1e-12), q
        assert got["recall@100"][q] == pytest.approx(expected_recall[q], abs=1e-12), q
    # the exponential gain (2^rel - 1) would give another value for the graded case
    assert got["ndcg@10"]["b"] != pytest.approx((1 + 3 / LOG2(3)) / (3 + 1 / LOG2(3)))


def test_ties_are_ordered_as_trec_eval_orders_them() -> None:
    # equal scores: trec_eval puts the larger docid first, so "b" ranks before "a"
    assert trec_order([("a", 0.5), ("c", 0.9), ("b", 0.5)]) == [("c", 0.9), ("b", 0.5), ("a", 0.5)]
    got = trec_metrics({"q": {"a": 1}}, {"q": [("a", 0.5), ("b", 0.5)]})
    assert got["ndcg@10"]["q"] == pytest.approx(1 / LOG2(3))
    # the order of the input list does not matter, only the scores
    assert trec_metrics({"q": {"a": 1}}, {"q": [("b", 0.5), ("a", 0.5)]}) == got


def test_queries_without_positive_judgments_are_left_out() -> None:
    qrels = {"p": {"x": 1}, "neg": {"x": 0}}
    run = {"p": _run("x"), "neg": _run("x"), "unjudged": _run("x")}
    got = trec_metrics(qrels, run)
    assert got == {"ndcg@10": {"p": 1.0}, "recall@100": {"p": 1.0}}
    with pytest.raises(EmptySelectionError):
        trec_metrics(qrels, {"neg": _run("x")})


# ----------------------------------------------------------------------------- exact search


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_topk_over_chunks_equals_a_full_sort(chunk: int) -> None:
    rng = np.random.default_rng(0)
    passages = rng.standard_normal((300, 8)).astype(np.float32)
    passages /= np.linalg.norm(passages, axis=1, keepdims=True)  # cosine, as the encoders give
    passages[150] = passages[20]  # exact ties: the lower position must come first
    passages[299] = passages[20]
    queries = passages[[20, 1, 2, 3, 4]] + 0.5 * rng.standard_normal((5, 8)).astype(np.float32)
    queries[0] = passages[20]
    top = TopK(queries, 100)
    for start in range(0, len(passages), chunk):
        top.add(passages[start:start + chunk])
    scores = (queries.astype(np.float64) @ passages.astype(np.float64).T).astype(np.float32)
    for i in range(len(queries)):
        order = np.lexsort((np.arange(len(passages)), -scores[i].astype(np.float64)))[:100]
        assert top.positions[i].tolist() == order.tolist()
        assert np.array_equal(top.scores[i], scores[i][order])
    assert top.positions[0][:3].tolist() == [20, 150, 299]


def test_search_matches_brute_force_ranking(data: Path, tiny_model_dir: Path) -> None:
    from polyir.data.miracl import iter_corpus
    from polyir.models.resolve import load_encoder

    encoder = load_encoder(str(tiny_model_dir), device="cpu")
    shards = corpus_shards(data / "miracl-corpus" / "miracl-corpus-v1.0-sw")
    topics = read_topics(data / "miracl" / topics_name("sw"))
    qrels = read_qrels(data / "miracl" / qrels_name("sw"))
    out = evaluate_language(encoder, "sw", topics, qrels, iter_corpus(shards),
                            MiraclOptions(show_progress=False, chunk_size=16))
    passages = read_corpus(shards)
    q = encoder.encode(list(topics.values()), "query", show_progress=False).astype(np.float64)
    p = encoder.encode([x.content for x in passages], "passage", show_progress=False).astype(np.float64)
    scores = (q @ p.T).astype(np.float32)
    for i, qid in enumerate(topics):
        full = trec_order((passages[j].docid, float(scores[i, j])) for j in range(len(passages)))
        assert [d for d, _ in out.run[qid]] == [d for d, _ in full[:100]]
    assert out.counts == {"topics": 5, "queries": 3, "passages": 130, "judgments": 7, "relevant": 4}
    assert out.notes["queries_without_relevant"] == ["3", "5"]
    assert out.notes["relevant_not_in_corpus"] == 2
    with pytest.raises(PolyirError, match="k must be at least 100"):
        evaluate_language(encoder, "sw", topics, qrels, iter_corpus(shards), MiraclOptions(k=10))


# ----------------------------------------------------------------------------- end to end


def _evaluate(*args: str) -> CliRunner:
    res = runner.invoke(app, ["evaluate", "--dataset", "miracl", "--no-progress", *args])
    return res


def test_cli_end_to_end_on_made_up_corpus(data: Path, tmp_path: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "res" / "miracl.json"
    res = _evaluate("--model", str(tiny_model_dir), "--languages", "sw,yo", "--data-dir", str(data),
                    "--output", str(out))
    assert res.exit_code == 0, res.output
    assert "nDCG@10" in res.output and "macro" in res.output and "not in the corpus" in res.output
    result = json.loads(out.read_text())
    sw = {m: float(np.mean(list(v.values()))) for m, v in SW_EXPECTED.items()}
    assert result["per_language"]["sw"]["ndcg@10"] == pytest.approx(sw["ndcg@10"])
    assert result["per_language"]["sw"]["recall@100"] == pytest.approx(sw["recall@100"])
    assert result["per_language"]["yo"]["ndcg@10"] == pytest.approx(1.0)
    assert result["per_language"]["yo"]["recall@100"] == pytest.approx(1.0)
    assert result["metrics"]["ndcg@10"] == pytest.approx((sw["ndcg@10"] + 1.0) / 2)
    assert result["metrics"]["recall@100"] == pytest.approx((sw["recall@100"] + 1.0) / 2)
    pq = result["per_query"]
    assert pq["query_id"] == ["sw:1", "sw:2", "sw:4", "yo:7", "yo:9"]
    assert pq["query_lang"] == ["sw", "sw", "sw", "yo", "yo"]
    assert pq["ndcg@10"][:3] == pytest.approx(list(SW_EXPECTED["ndcg@10"].values()))
    assert result["counts"]["sw"]["passages"] == 130 and result["counts"]["yo"]["passages"] == 12
    assert result["notes"]["sw"]["relevant_not_in_corpus_examples"] == ["404#0", "999#0"]
    assert len(result["config"]["corpus_shards"]["sw"]) == 3
    # TREC runs beside the JSON: 100 lines per sw topic (130 passages), 12 per yo topic
    sw_run = (tmp_path / "res" / "miracl.runs" / "sw.trec").read_text().splitlines()
    assert len(sw_run) == 5 * 100 and sw_run[0].split()[:4] == ["1", "Q0", "10#0", "1"]
    yo_run = (tmp_path / "res" / "miracl.runs" / "yo.trec").read_text().splitlines()
    assert len(yo_run) == 2 * 12

    # --corpus pointing at the download folder gives the same numbers; compare finds no difference
    out2 = tmp_path / "res2.json"
    res = _evaluate("--model", str(tiny_model_dir), "--languages", "sw,yo", "--data-dir", str(data),
                    "--corpus", str(data / "miracl-corpus"), "--output", str(out2), "--cache")
    assert res.exit_code == 0, res.output
    assert json.loads(out2.read_text())["per_query"] == pq
    cmp = runner.invoke(app, ["compare", str(out), str(out2), "--resamples", "200",
                              "--output", str(tmp_path / "cmp.json")])
    assert cmp.exit_code == 0, cmp.output
    rows = {r["metric"]: r for r in json.loads((tmp_path / "cmp.json").read_text())["rows"]}
    assert set(rows) == {"ndcg@10", "recall@100"}
    assert rows["ndcg@10"]["diff"] == 0 and rows["ndcg@10"]["n_queries"] == 5


@pytest.mark.parametrize(("args", "message"), [
    (["--languages", "el"], "MIRACL has no language 'el'"),
    (["--languages", "xx"], "unknown language code(s): xx"),
    (["--languages", "sw", "--corpus", "{tmp}/nowhere"], "MIRACL corpus for 'sw' not found"),
    (["--languages", "fi"], "qrels.miracl-v1.0-fi-dev.tsv"),  # offline, no topics/qrels for fi
    (["--languages", "sw", "--max-pairs", "3"], "--max-pairs is for LAReQA"),
])
def test_cli_errors_are_one_line_exit_2(data: Path, tmp_path: Path, tiny_model_dir: Path,
                                        args: list[str], message: str) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    res = _evaluate("--model", str(tiny_model_dir), "--data-dir", str(data), *args)
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split())


def test_corpus_option_is_refused_for_lareqa(tmp_path: Path) -> None:
    res = runner.invoke(app, ["evaluate", "--dataset", "xquad-r", "--corpus", str(tmp_path)])
    assert res.exit_code == 2 and "--corpus is for MIRACL" in res.output


# ----------------------------------------------------------------------------- real topics and qrels

REAL = shared_data_dir()


@pytest.mark.integration
@pytest.mark.skipif(REAL is None or not (REAL / "miracl").is_dir(),
                    reason="shared data folder with miracl/ not found (set POLYIR_DATA_DIR to a folder "
                           "holding miracl/topics.miracl-v1.0-<lang>-dev.tsv and qrels)")
def test_real_topics_and_qrels_of_two_languages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYIR_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(registry, "_open_url", lambda url, timeout: pytest.fail("no download"))
    files = resolve_file_sets("miracl", data_dir=REAL, languages="sw,yo", verify=True)
    expected = {"sw": (482, 5092, 910), "yo": (119, 1188, 144)}  # queries, judgments, rel = 1
    for lang, (n_topics, n_judgments, n_relevant) in expected.items():
        topics = read_topics(files[lang]["topics"])
        qrels = read_qrels(files[lang]["qrels"])
        assert len(topics) == n_topics
        assert sum(len(v) for v in qrels.values()) == n_judgments
        assert sum(r == 1 for v in qrels.values() for r in v.values()) == n_relevant
        assert {r for v in qrels.values() for r in v.values()} == {0, 1}
        assert set(qrels) == set(topics)  # every topic judged, every judged query a topic
        assert all(any(r > 0 for r in v.values()) for v in qrels.values())  # none is left out
        assert all("#" in d for v in qrels.values() for d in v)
