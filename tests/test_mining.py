"""`polyir data mine`: hard negatives from a model's ranking, never a passage of the query's own pair id."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from polyir.cli import app
from polyir.data.jsonl import read_parallel_jsonl, write_parallel_jsonl
from polyir.data.mining import (
    MiningOptions,
    corpus_pool,
    mine_negatives,
    parse_window,
    read_pool_files,
)
from polyir.data.types import ParallelPair, ParallelQACorpus, QAEntry
from polyir.errors import PolyirError

runner = CliRunner()
WORDS = {
    "en": "hello world the cat sat on mat dog ran in park who was first emperor of rome".split(),
    "de": "wer war der erste kaiser von rom hund katze".split(),
    "es": "el gato perro quien fue primer emperador de".split(),
}
SHARED = "berlin paris madrid capital city river long old new big small red blue green".split()
N_PAIRS = 8


def _text(rng: np.random.Generator, lang: str, n: int) -> str:
    words = WORDS[lang] + SHARED
    return " ".join(rng.choice(words, size=n).tolist())


@pytest.fixture(scope="module")
def corpus() -> ParallelQACorpus:
    """8 pairs x en/de/es; pair p0's German positive is the English query's text (its best match)."""
    rng = np.random.default_rng(0)
    pairs = []
    for i in range(N_PAIRS):
        entries = {lang: QAEntry(query=_text(rng, lang, 5), positive=_text(rng, lang, 8),
                                 negatives=("an old negative",)) for lang in WORDS}
        pairs.append(ParallelPair(f"p{i}", entries))
    en = pairs[0].entries["en"]
    pairs[0].entries["de"] = QAEntry(query=pairs[0].entries["de"].query, positive=en.query)
    return ParallelQACorpus("tiny", pairs)


@pytest.fixture(scope="module")
def encoder(tiny_model_dir):
    from polyir.models.resolve import load_encoder

    return load_encoder(str(tiny_model_dir), device="cpu")


def _oracle(encoder, corpus, options: MiningOptions) -> dict[tuple[str, str], tuple[str, ...]]:
    """The rule written out plainly: score every (query, passage), drop the forbidden, sort, slice."""
    pool = corpus_pool(corpus)
    p = encoder.encode([x.text for x in pool], "passage", show_progress=False).astype(np.float64)
    out = {}
    for pair in corpus.pairs:
        positives = {e.positive for e in pair.entries.values()}
        for lang, e in pair.entries.items():
            q = encoder.encode([e.query], "query", show_progress=False).astype(np.float64)[0]
            scores = (p @ q).astype(np.float32)
            ok = [j for j, x in enumerate(pool)
                  if pair.pair_id not in x.pair_ids and x.text not in positives
                  and (options.source == "all"
                       or (options.source == "same" and lang in x.languages)
                       or (options.source == "other" and x.languages - {lang}))]
            ranked = sorted(ok, key=lambda j: (-float(scores[j]), j))
            a, b = options.window
            out[(pair.pair_id, lang)] = tuple(pool[j].text for j in ranked[a:b][: options.count])
    return out


def _negatives(corpus: ParallelQACorpus) -> dict[tuple[str, str], tuple[str, ...]]:
    return {(p.pair_id, lang): e.negatives for p in corpus.pairs for lang, e in p.entries.items()}


def test_translation_is_never_a_negative_even_when_it_ranks_first(encoder, corpus):
    pool = corpus_pool(corpus)
    p = encoder.encode([x.text for x in pool], "passage", show_progress=False)
    q = encoder.encode([corpus.pairs[0].entries["en"].query], "query", show_progress=False)[0]
    best = pool[int(np.argmax(p @ q))]
    assert best.pair_ids == {"p0"} and best.languages == {"de"}  # the precondition: a translation wins
    mined, stats = mine_negatives(encoder, corpus, options=MiningOptions(window=(0, 40), count=40,
                                                                         show_progress=False))
    by_text = {x.text: x for x in pool}
    for pair in mined.pairs:
        positives = {e.positive for e in pair.entries.values()}
        for e in pair.entries.values():
            assert e.negatives, pair.pair_id
            assert not set(e.negatives) & positives
            assert all(pair.pair_id not in by_text[n].pair_ids for n in e.negatives)
            # everything else is eligible: the pool minus this pair's 3 positives
            assert len(e.negatives) == len(pool) - 3
    assert stats.entries == 3 * N_PAIRS and stats.short == 3 * N_PAIRS  # 21 < 40 passages each


@pytest.mark.parametrize("source", ["same", "other", "all"])
@pytest.mark.parametrize("window,count", [((0, 3), 3), ((2, 7), 2), ((4, 6), 5)])
def test_window_count_and_language_filter_follow_the_ranking(encoder, corpus, source, window, count):
    options = MiningOptions(window=window, count=count, source=source, show_progress=False)
    mined, stats = mine_negatives(encoder, corpus, options=options)
    got = _negatives(mined)
    assert got == _oracle(encoder, corpus, options)
    languages = {x.text: x.languages for x in corpus_pool(corpus)}
    for (pid, lang), negs in got.items():
        assert len(negs) == min(count, window[1] - window[0])
        if source == "same":
            assert all(lang in languages[n] for n in negs)
        elif source == "other":
            assert all(languages[n] - {lang} for n in negs)
    assert stats.negatives == sum(len(v) for v in got.values())
    # the old negatives were replaced
    assert all("an old negative" not in v for v in got.values())


def test_random_pick_is_seeded_and_stays_inside_the_window(encoder, corpus):
    def run(seed):
        options = MiningOptions(window=(1, 9), count=3, pick="random", seed=seed, show_progress=False)
        return _negatives(mine_negatives(encoder, corpus, options=options)[0])

    window = _oracle(encoder, corpus, MiningOptions(window=(1, 9), count=8))
    a, b = run(0), run(0)
    assert a == b
    for key, negs in a.items():
        assert len(negs) == 3 and set(negs) <= set(window[key])
        assert list(negs) == [n for n in window[key] if n in negs]  # kept in rank order
    assert run(1) != a


def test_user_pool_files_drop_texts_equal_to_a_positive_of_the_pair(encoder, corpus, tmp_path):
    p0 = corpus.pairs[0].entries
    (tmp_path / "wiki.en.txt").write_text("the red cat\nthe big dog\n" + p0["es"].positive + "\n", encoding="utf-8")
    (tmp_path / "wiki.de.txt").write_text("der hund\nrom\n", encoding="utf-8")
    pool = read_pool_files([tmp_path / "wiki.en.txt", tmp_path / "wiki.de.txt"])
    assert len(pool) == 5 and all(not x.pair_ids for x in pool)
    mined, _ = mine_negatives(encoder, corpus, pool,
                              MiningOptions(window=(0, 10), count=10, show_progress=False))
    got = _negatives(mined)
    assert all(p0["es"].positive not in got[("p0", lang)] for lang in WORDS)
    assert p0["es"].positive in got[("p1", "en")]  # another pair may receive it
    assert len(got[("p0", "en")]) == 4 and len(got[("p1", "en")]) == 5
    with pytest.raises(PolyirError, match="no such pool file"):
        read_pool_files([tmp_path / "missing.en.txt"])


def test_bad_options_are_errors():
    assert parse_window("10:50") == (10, 50)
    for spec in ("50:10", "10", "a:b", "-1:4", "3:3", "1:2:3"):
        with pytest.raises(PolyirError, match="window"):
            parse_window(spec)
    for bad in (MiningOptions(window=(5, 2)), MiningOptions(count=0), MiningOptions(source="near"),  # type: ignore[arg-type]
                MiningOptions(pick="best")):  # type: ignore[arg-type]
        with pytest.raises(PolyirError):
            bad.check()


# --------------------------------------------------------------------------- CLI


def _mine(*args):
    return runner.invoke(app, ["data", "mine", "--no-progress", *args])


def test_cli_round_trip_feeds_the_trainers_negatives(tiny_model_dir, corpus, tmp_path):
    from polyir.sampling import HybridBatchSampler, SamplerConfig

    src = write_parallel_jsonl(corpus, tmp_path / "train.jsonl")
    out = tmp_path / "out" / "mined.jsonl.gz"
    res = _mine("--input", str(src), "--output", str(out), "--model", str(tiny_model_dir),
                "--window", "1:5", "--count", "2", "--from", "other", "--batch-size", "4")
    assert res.exit_code == 0, res.output
    assert "wrote 48 negatives for 24 entries" in res.output
    back = read_parallel_jsonl(out)
    assert [p.pair_id for p in back.pairs] == [p.pair_id for p in corpus.pairs]
    for pair, orig in zip(back.pairs, corpus.pairs):
        for lang, e in pair.entries.items():
            assert len(e.negatives) == 2
            assert (e.query, e.positive) == (orig.entries[lang].query, orig.entries[lang].positive)
    sampler = HybridBatchSampler(back, SamplerConfig(strategy="hybrid", batch_size=4, seed=0))
    examples = [x for batch in sampler.take(4) for x in batch]
    assert examples and all(len(x.negatives) >= 1 for x in examples)
    assert not list(tmp_path.joinpath("out").glob(".*.tmp"))


def test_cli_bad_input_is_one_line(tiny_model_dir, corpus, tmp_path):
    src = write_parallel_jsonl(corpus, tmp_path / "train.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n", encoding="utf-8")
    (tmp_path / "empty.en.txt").write_text("", encoding="utf-8")
    model = ["--model", str(tiny_model_dir)]
    cases = [
        (["--input", str(tmp_path / "nope.jsonl"), "--output", str(tmp_path / "o.jsonl"), *model], "no such file"),
        (["--input", str(tmp_path / "empty.jsonl"), "--output", str(tmp_path / "o.jsonl"), *model], "no records"),
        (["--input", str(src), "--output", str(tmp_path / "o.jsonl"), "--window", "50:10", *model], "window"),
        (["--input", str(src), "--output", str(tmp_path / "o.jsonl"), "--from", "near", *model], "--from"),
        (["--input", str(src), "--output", str(tmp_path / "o.jsonl"), "--pool", str(tmp_path / "empty.en.txt"),
          *model], "empty"),
        (["--input", str(src), "--output", str(tmp_path), *model], "directory"),
    ]
    for args, message in cases:
        res = _mine(*args)
        assert res.exit_code == 2, (args, res.output)
        assert message in res.output and "Traceback" not in res.output
        assert res.output.count("error:") == 1 and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "o.jsonl").exists()
