"""Tests for polyir.sampling: batch invariants, statistics of the draws, determinism, resume, ranks.

Statistical bounds: a count k of independent draws with probability p out of n is Binomial(n, p);
we accept |k - n p| <= 4.5 sqrt(n p (1 - p)). Under the normal approximation a correct sampler
fails one such check with probability ~6.8e-6 (union over <= 6 categories: < 5e-5), while the
alternatives we guard against (e.g. "size" behaving like "uniform") differ by tens of sigmas.
Seeds are fixed, so the tests are deterministic; the bound says they are not tuned to the seed.
"""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from polyir.data.types import ParallelPair, ParallelQACorpus, QAEntry
from polyir.errors import DataFormatError, EmptySelectionError, PolyirError, UnknownLanguageError
from polyir.sampling import (
    CROSSLINGUAL,
    MONOLINGUAL,
    Batch,
    HybridBatchSampler,
    SamplerConfig,
    SamplerConfigError,
    SamplerStats,
    normalize_passage,
)

LANGS = ["de", "en", "fr", "zh"]
SIGMAS = 4.5


# ----------------------------------------------------------------------------- helpers


def make_corpus(name: str, spec: dict[str, dict[str, str | tuple[str, tuple[str, ...]]]]) -> ParallelQACorpus:
    """spec: pair id -> language -> positive text (or (positive, negatives)); queries are generated."""
    pairs = []
    for pid, entries in spec.items():
        built = {}
        for lang, value in entries.items():
            pos, negs = (value, ()) if isinstance(value, str) else value
            built[lang] = QAEntry(query=f"q {pid} {lang}", positive=pos, negatives=tuple(negs))
        pairs.append(ParallelPair(pid, built))
    return ParallelQACorpus(name, pairs)


def full_corpus(name: str = "c", n: int = 40, langs: list[str] | None = None) -> ParallelQACorpus:
    """n pairs, each in every language, all positives distinct."""
    langs = langs or ["de", "en", "fr"]
    return make_corpus(name, {f"{name}{i}": {lang: f"answer {name} {i} {lang}" for lang in langs} for i in range(n)})


def nested_corpus(sizes: dict[str, int], name: str = "nest") -> ParallelQACorpus:
    """Pair i holds language L iff i < sizes[L] (so small languages' pairs also hold the big ones)."""
    n = max(sizes.values())
    return make_corpus(
        name, {f"p{i}": {lang: f"a {i} {lang}" for lang, s in sizes.items() if i < s} for i in range(n)}
    )


def within_binomial(k: int, n: int, p: float) -> bool:
    return abs(k - n * p) <= SIGMAS * math.sqrt(n * p * (1 - p)) + 1e-9


def global_batches(samplers: list[HybridBatchSampler]) -> list[Batch]:
    """One step on every rank."""
    return [s.next_batch() for s in samplers]


def capacity(corpus: ParallelQACorpus, query_lang: str, passage_lang: str) -> int:
    """Independent oracle: distinct positive texts in passage_lang among pairs holding both languages."""
    return len(
        {
            normalize_passage(p.entries[passage_lang].positive)
            for p in corpus.pairs
            if query_lang in p.entries and passage_lang in p.entries
        }
    )


def check_global_batch(corpus: ParallelQACorpus, cfg: SamplerConfig, batches: list[Batch], world_size: int) -> None:
    """Every invariant a step must satisfy, checked against the corpus itself."""
    by_id = {p.pair_id: p for p in corpus.pairs}
    g = cfg.batch_size * world_size
    first = batches[0]
    assert all(b.kind == first.kind and b.languages == first.languages and b.step == first.step for b in batches)
    assert len({len(b) for b in batches}) == 1, "ranks got batches of different sizes"
    if cfg.allow_smaller_batches:
        assert 1 <= len(first) <= cfg.batch_size
    else:
        assert len(first) == cfg.batch_size
    examples = [e for b in batches for e in b.examples]
    assert len({e.pair_id for e in examples}) == len(examples), "duplicate pair id in a global batch"
    positives = [normalize_passage(e.positive) for e in examples]
    assert len(set(positives)) == len(positives), "duplicate positive text in a global batch"
    for e in examples:
        pair = by_id[e.pair_id]
        assert e.query_language in pair.entries and e.passage_language in pair.entries
        assert e.query == pair.entries[e.query_language].query
        assert e.positive == pair.entries[e.passage_language].positive
        expected_negs = tuple(
            n for n in pair.entries[e.passage_language].negatives if normalize_passage(n) not in set(positives)
        )
        assert e.negatives == expected_negs
        if cfg.languages is not None:
            assert e.query_language in cfg.languages and e.passage_language in cfg.languages
    if first.kind == MONOLINGUAL:
        (lang,) = first.languages
        assert all(e.query_language == lang == e.passage_language for e in examples)
        if not cfg.allow_smaller_batches:
            assert capacity(corpus, lang, lang) >= g, "a language below the batch size was drawn"
    else:
        assert first.kind == CROSSLINGUAL
        assert all(e.query_language != e.passage_language for e in examples)
        if cfg.crosslingual_pairing == "per_batch":
            x, y = first.languages
            assert all((e.query_language, e.passage_language) == (x, y) for e in examples)
            if not cfg.allow_smaller_batches:
                assert capacity(corpus, x, y) >= g
        else:
            assert first.languages == ()


# ----------------------------------------------------------------------------- hypothesis strategies


@st.composite
def corpora(draw: st.DrawFn) -> ParallelQACorpus:
    """Small random corpora with missing languages, shared answers and hard negatives."""
    n = draw(st.integers(1, 24))
    n_texts = draw(st.integers(max(1, n // 2), n + 4))  # fewer texts than pairs => shared answers
    spec = {}
    for i in range(n):
        langs = draw(st.sets(st.sampled_from(LANGS), min_size=1))
        entry = {}
        for lang in sorted(langs):
            k = draw(st.integers(0, n_texts - 1))
            # sometimes language-independent text (a name, a number): equal across languages
            text = f"ans {k}" if draw(st.integers(0, 4)) == 0 else f"ans {k} {lang}"
            text = draw(st.sampled_from(["", " ", "  "])) + text  # whitespace variants collide
            negs = tuple(f"ans {draw(st.integers(0, n_texts - 1))} {lang}" for _ in range(draw(st.integers(0, 2))))
            entry[lang] = (text, negs)
        spec[f"id{i}"] = entry
    return make_corpus("rand", spec)


configs = st.builds(
    SamplerConfig,
    strategy=st.sampled_from(["monolingual", "crosslingual", "hybrid"]),
    alpha=st.sampled_from([0.0, 0.3, 0.5, 1.0]),
    batch_size=st.integers(1, 4),
    crosslingual_pairing=st.sampled_from(["per_batch", "per_example"]),
    language_sampling=st.sampled_from(["uniform", "size", "temperature"]),
    seed=st.integers(0, 2**32),
    drop_last=st.booleans(),
    allow_smaller_batches=st.booleans(),
)

PROPERTY = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)


# ----------------------------------------------------------------------------- invariants


@PROPERTY
@given(corpus=corpora(), cfg=configs, world_size=st.integers(1, 3), steps=st.integers(1, 15))
def test_every_batch_satisfies_invariants(corpus, cfg, world_size, steps):
    try:
        samplers = [HybridBatchSampler(corpus, cfg, rank=r, world_size=world_size) for r in range(world_size)]
    except EmptySelectionError:
        assume(False)
    assert len({len(s) for s in samplers}) == 1
    for _ in range(steps):
        try:
            batches = global_batches(samplers)
        except EmptySelectionError:
            # only per-example pairing can fail at draw time (greedy language choice), documented
            assert cfg.crosslingual_pairing == "per_example" and not cfg.allow_smaller_batches
            return
        check_global_batch(corpus, cfg, batches, world_size)


@PROPERTY
@given(
    corpus=corpora(),
    strategy=st.sampled_from(["monolingual", "crosslingual"]),
    batch_size=st.integers(1, 5),
    world_size=st.integers(1, 2),
    drop_last=st.booleans(),
)
def test_feasibility_matches_oracle(corpus, strategy, batch_size, world_size, drop_last):
    """The sampler refuses exactly the (strategy, data) combinations that cannot fill a batch."""
    g = batch_size * world_size
    langs = corpus.languages
    if strategy == "monolingual":
        feasible = any(capacity(corpus, lang, lang) >= g for lang in langs)
    else:
        feasible = any(capacity(corpus, x, y) >= g for x in langs for y in langs if x != y)
    feasible = feasible and (len(corpus) >= g or not drop_last)
    cfg = SamplerConfig(strategy=strategy, batch_size=batch_size, drop_last=drop_last, seed=3)
    if not feasible:
        with pytest.raises(EmptySelectionError):
            HybridBatchSampler(corpus, cfg, world_size=world_size)
        return
    samplers = [HybridBatchSampler(corpus, cfg, rank=r, world_size=world_size) for r in range(world_size)]
    for _ in range(6):
        check_global_batch(corpus, cfg, global_batches(samplers), world_size)


def test_shared_answer_sentence_never_twice_in_a_batch():
    # p0 and p1 are different questions with the same answer sentence (up to whitespace) in en
    spec = {f"p{i}": {"en": f"answer {i}", "de": f"Antwort {i}"} for i in range(8)}
    spec["p1"]["en"] = "  The answer is 42. "
    spec["p0"]["en"] = "The answer is 42."
    corpus = make_corpus("shared", spec)
    sampler = HybridBatchSampler(corpus, SamplerConfig(strategy="monolingual", batch_size=7, seed=0))
    assert sampler.describe()["corpora"]["shared"]["monolingual_skipped"] == {}
    seen_p0 = seen_p1 = 0
    for batch in sampler.take(200):
        ids = set(batch.pair_ids)
        if batch.languages == ("en",):
            assert not {"p0", "p1"} <= ids
            seen_p0 += "p0" in ids
            seen_p1 += "p1" in ids
        else:
            assert len(ids) == 7
    assert seen_p0 > 0 and seen_p1 > 0  # both are used, just never together
    # capacity of en is 7 distinct texts: a batch of 8 in en is impossible, de (8 texts) is fine
    sampler8 = HybridBatchSampler(corpus, SamplerConfig(strategy="monolingual", batch_size=8, seed=0))
    assert sampler8.describe()["corpora"]["shared"]["monolingual_skipped"] == {"en": 7}
    assert {b.languages for b in sampler8.take(30)} == {("de",)}


def test_hard_negative_equal_to_another_positive_is_dropped():
    corpus = make_corpus(
        "negs",
        {
            "a": {"en": ("alpha", ("beta", "gamma"))},
            "b": {"en": ("beta", ("delta",))},
        },
    )
    sampler = HybridBatchSampler(corpus, SamplerConfig(strategy="monolingual", batch_size=2))
    batch = sampler.next_batch()
    negs = {e.pair_id: e.negatives for e in batch}
    assert negs == {"a": ("gamma",), "b": ("delta",)}
    assert sampler.stats.negatives_dropped == 1


def test_monolingual_batches_are_single_language_and_pairs_hold_it():
    corpus = nested_corpus({"en": 30, "de": 12, "fr": 6})
    by_id = {p.pair_id: p for p in corpus.pairs}
    sampler = HybridBatchSampler(corpus, SamplerConfig(strategy="monolingual", batch_size=5, seed=1))
    langs_seen = set()
    for batch in sampler.take(100):
        (lang,) = batch.languages
        langs_seen.add(lang)
        assert {(e.query_language, e.passage_language) for e in batch} == {(lang, lang)}
        assert all(lang in by_id[e.pair_id].entries for e in batch)
    assert langs_seen == {"en", "de", "fr"}


def test_crosslingual_per_batch_uses_one_language_pair_and_only_pairs_holding_both():
    corpus = nested_corpus({"en": 30, "de": 12, "fr": 6})
    by_id = {p.pair_id: p for p in corpus.pairs}
    sampler = HybridBatchSampler(corpus, SamplerConfig(strategy="crosslingual", batch_size=5, seed=2))
    pairs_seen = set()
    for batch in sampler.take(200):
        x, y = batch.languages
        assert x != y
        assert set(batch.language_pairs) == {(x, y)}
        assert all(x in by_id[e.pair_id].entries and y in by_id[e.pair_id].entries for e in batch)
        pairs_seen.add((x, y))
    assert len(pairs_seen) == 6  # every ordered pair has >= 5 parallel pairs


def test_crosslingual_per_example_draws_varied_pairs_uniformly():
    corpus = full_corpus(n=40)
    sampler = HybridBatchSampler(
        corpus, SamplerConfig(strategy="crosslingual", crosslingual_pairing="per_example", batch_size=4, seed=3)
    )
    counts: Counter = Counter()
    mixed_batches = 0
    for batch in sampler.take(500):
        assert batch.languages == ()
        assert all(q != p for q, p in batch.language_pairs)
        counts.update(batch.language_pairs)
        mixed_batches += len(set(batch.language_pairs)) > 1
    n = sum(counts.values())
    assert len(counts) == 6
    # all pairs hold all 3 languages, texts are distinct: each example is uniform over 6 ordered pairs
    assert all(within_binomial(k, n, 1 / 6) for k in counts.values()), counts
    assert mixed_batches > 400  # P(a batch of 4 is single-pair) = 6 / 6**4


def test_language_restriction_is_respected():
    corpus = full_corpus(n=20, langs=["de", "en", "fr", "zh"])
    cfg = SamplerConfig(languages=["en", "zh"], batch_size=4, seed=0)
    sampler = HybridBatchSampler(corpus, cfg)
    used = {lang for b in sampler.take(50) for pair in b.language_pairs for lang in pair}
    assert used == {"en", "zh"}
    with pytest.raises(UnknownLanguageError):
        HybridBatchSampler(corpus, SamplerConfig(languages=["en", "sw"]))


# ----------------------------------------------------------------------------- epochs


@pytest.mark.parametrize("strategy", ["monolingual", "crosslingual", "hybrid"])
def test_epoch_uses_each_pair_at_most_once_with_drop_last(strategy):
    corpus = full_corpus(n=50)
    sampler = HybridBatchSampler(corpus, SamplerConfig(strategy=strategy, batch_size=4, seed=5))
    assert len(sampler) == 12
    epoch = list(sampler)
    assert len(epoch) == 12 and all(b.epoch == 0 for b in epoch)
    ids = [pid for b in epoch for pid in b.pair_ids]
    assert len(ids) == 48 and len(set(ids)) == 48
    second = list(sampler)
    assert len(second) == 12 and all(b.epoch == 1 for b in second)
    assert sampler.stats.reused_examples == 0


def test_epoch_covers_every_pair_without_drop_last():
    corpus = full_corpus(n=50)
    sampler = HybridBatchSampler(corpus, SamplerConfig(batch_size=4, drop_last=False, seed=5))
    assert len(sampler) == 13
    epoch = list(sampler)
    ids = [pid for b in epoch for pid in b.pair_ids]
    assert len(ids) == 52 and set(ids) == {p.pair_id for p in corpus.pairs}
    assert len(epoch[-1]) == 4  # the last batch is topped up with re-used pairs, not shortened
    assert sampler.stats.reused_examples == 2


def test_take_crosses_epochs_and_iteration_resumes_mid_epoch():
    corpus = full_corpus(n=20)
    a = HybridBatchSampler(corpus, SamplerConfig(batch_size=4, seed=9))
    b = HybridBatchSampler(corpus, SamplerConfig(batch_size=4, seed=9))
    taken = list(a.take(12))  # 5 per epoch: epochs 0, 1, and 2 of the third
    assert [x.epoch for x in taken] == [0] * 5 + [1] * 5 + [2] * 2
    assert [x.step for x in taken] == list(range(12))
    first = list(b.take(2))
    rest = list(b)  # the rest of epoch 0
    assert len(rest) == 3
    assert first + rest + list(b) + list(b.take(2)) == taken


# ----------------------------------------------------------------------------- determinism and resume


def test_same_seed_same_batches_different_seed_different():
    corpus = full_corpus(n=40)
    cfg = SamplerConfig(batch_size=4, seed=11, crosslingual_pairing="per_example")
    a = list(HybridBatchSampler(corpus, cfg).take(25))
    b = list(HybridBatchSampler(corpus, cfg).take(25))
    c = list(HybridBatchSampler(corpus, SamplerConfig.from_dict({**cfg.to_dict(), "seed": 12})).take(25))
    assert a == b
    assert a != c
    assert sum(x.pair_ids != y.pair_ids for x, y in zip(a, c)) > 20


resume_configs = st.builds(
    SamplerConfig,
    strategy=st.sampled_from(["monolingual", "crosslingual", "hybrid"]),
    batch_size=st.integers(1, 4),
    crosslingual_pairing=st.sampled_from(["per_batch", "per_example"]),
    language_sampling=st.sampled_from(["uniform", "size"]),
    drop_last=st.booleans(),
    seed=st.integers(0, 1000),
)
RESUME_CORPUS = nested_corpus({"en": 17, "de": 11, "fr": 7})


@settings(max_examples=40, deadline=None)
@given(cfg=resume_configs, world_size=st.integers(1, 2), k=st.integers(0, 30), m=st.integers(1, 12))
def test_resume_from_state_dict_equals_uninterrupted(cfg, world_size, k, m):
    rank = world_size - 1
    uninterrupted = HybridBatchSampler(RESUME_CORPUS, cfg, rank=rank, world_size=world_size)
    expected = list(uninterrupted.take(k + m))[k:]
    first = HybridBatchSampler(RESUME_CORPUS, cfg, rank=rank, world_size=world_size)
    list(first.take(k))
    state = json.loads(json.dumps(first.state_dict()))  # survives a JSON round trip
    resumed = HybridBatchSampler(RESUME_CORPUS, cfg, rank=rank, world_size=world_size)
    list(resumed.take(3))  # its own position must be overwritten
    resumed.load_state_dict(state)
    assert list(resumed.take(m)) == expected
    assert resumed.stats.to_dict() == uninterrupted.stats.to_dict()
    assert resumed.state_dict() == uninterrupted.state_dict()


def test_state_dict_rejects_other_config_or_corpus():
    corpus = full_corpus(n=20)
    state = HybridBatchSampler(corpus, SamplerConfig(batch_size=2, seed=1)).state_dict()
    with pytest.raises(SamplerConfigError):
        HybridBatchSampler(corpus, SamplerConfig(batch_size=2, seed=2)).load_state_dict(state)
    with pytest.raises(SamplerConfigError):
        HybridBatchSampler(corpus, SamplerConfig(batch_size=2, seed=1), world_size=2).load_state_dict(state)
    with pytest.raises(PolyirError):
        HybridBatchSampler(full_corpus(n=21), SamplerConfig(batch_size=2, seed=1)).load_state_dict(state)


# ----------------------------------------------------------------------------- distributed


def test_ranks_get_disjoint_pairs_and_equal_batch_counts():
    spec = {f"p{i}": {lang: f"ans {i % 30} {lang}" for lang in ["en", "de", "fr"]} for i in range(40)}
    corpus = make_corpus("d", spec)  # 10 answer texts shared by two pairs each
    cfg = SamplerConfig(batch_size=3, seed=4, crosslingual_pairing="per_batch")
    ranks = [HybridBatchSampler(corpus, cfg, rank=r, world_size=2) for r in range(2)]
    epochs = [list(s) for s in ranks]
    assert len(epochs[0]) == len(epochs[1]) == len(ranks[0]) == 40 // 6
    steps = [list(ranks[r].take(30)) for r in range(2)]
    for b0, b1 in list(zip(*epochs)) + list(zip(*steps)):
        assert (b0.kind, b0.languages, b0.step) == (b1.kind, b1.languages, b1.step)
        assert not set(b0.pair_ids) & set(b1.pair_ids)
        assert not {normalize_passage(t) for t in b0.positives} & {normalize_passage(t) for t in b1.positives}
        assert len(b0) == len(b1) == 3
    # the ranks' shares are exactly the single-process global batch, split
    single = HybridBatchSampler(corpus, SamplerConfig.from_dict({**cfg.to_dict(), "batch_size": 6}))
    for b0, b1, g in zip(*epochs, single):
        assert b0.examples + b1.examples == g.examples


def test_rank_and_world_size_validation():
    corpus = full_corpus(n=20)
    for rank, world in [(2, 2), (-1, 2), (0, 0)]:
        with pytest.raises(SamplerConfigError):
            HybridBatchSampler(corpus, SamplerConfig(batch_size=2), rank=rank, world_size=world)


# ----------------------------------------------------------------------------- frequencies


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_hybrid_monolingual_share_within_binomial_bound(alpha):
    n = 2000
    sampler = HybridBatchSampler(full_corpus(n=30), SamplerConfig(alpha=alpha, batch_size=2, seed=21))
    kinds = Counter(b.kind for b in sampler.take(n))
    assert sum(kinds.values()) == n
    assert within_binomial(kinds[MONOLINGUAL], n, alpha), (alpha, kinds)
    if alpha in (0.0, 1.0):  # exact, not just within a bound
        assert kinds[MONOLINGUAL] == n * alpha
    assert sampler.stats.kinds == kinds


@pytest.mark.parametrize(
    ("sampling", "temperature", "expected"),
    [
        ("uniform", 0.5, {"en": 1 / 3, "de": 1 / 3, "fr": 1 / 3}),
        ("size", 0.5, {"en": 40 / 70, "de": 20 / 70, "fr": 10 / 70}),
        (
            "temperature",
            0.5,
            {lang: math.sqrt(s) / (math.sqrt(40) + math.sqrt(20) + math.sqrt(10)) for lang, s in
             {"en": 40, "de": 20, "fr": 10}.items()},
        ),
    ],
)
def test_monolingual_language_frequencies(sampling, temperature, expected):
    n = 3000
    corpus = nested_corpus({"en": 40, "de": 20, "fr": 10})
    cfg = SamplerConfig(strategy="monolingual", language_sampling=sampling, temperature=temperature,
                        batch_size=2, seed=31)
    sampler = HybridBatchSampler(corpus, cfg)
    counts = Counter(b.languages[0] for b in sampler.take(n))
    for lang, p in expected.items():
        assert within_binomial(counts[lang], n, p), (sampling, counts)
    assert dict(sampler.stats.monolingual_languages) == dict(counts)
    described = sampler.describe()["corpora"]["nest"]["monolingual_languages"]
    assert described == pytest.approx(expected)


def test_crosslingual_per_batch_size_sampling_is_product_of_sizes():
    n = 3000
    sizes = {"en": 40, "de": 20, "fr": 10}
    corpus = nested_corpus(sizes)
    cfg = SamplerConfig(strategy="crosslingual", language_sampling="size", batch_size=2, seed=41)
    counts = Counter(b.languages for b in HybridBatchSampler(corpus, cfg).take(n))
    weights = {(x, y): sizes[x] * sizes[y] for x in sizes for y in sizes if x != y}
    total = sum(weights.values())
    for xy, w in weights.items():
        assert within_binomial(counts[xy], n, w / total), counts


@pytest.mark.parametrize(("weights", "p_a"), [(None, 0.75), ({"A": 1.0, "B": 3.0}, 0.25), ({"A": 1.0, "B": 0.0}, 1.0)])
def test_corpus_mixing_follows_weights(weights, p_a):
    n = 3000
    a, b = full_corpus("A", n=30), full_corpus("B", n=10)
    sampler = HybridBatchSampler([a, b], SamplerConfig(batch_size=2, corpus_weights=weights, seed=51))
    batches = list(sampler.take(n))
    k = sum(x.corpus == "A" for x in batches)
    assert within_binomial(k, n, p_a), (weights, k)
    for x in batches:  # one corpus per batch
        assert {e.corpus for e in x} == {x.corpus}
        assert all(pid.startswith(x.corpus) for pid in x.pair_ids)
    assert len(sampler) == (40 if weights is None or weights["B"] > 0 else 30) // 2


def test_corpus_that_cannot_serve_a_kind_only_gets_the_other_kind():
    parallel = full_corpus("par", n=20)
    english = make_corpus("eng", {f"e{i}": {"en": f"english {i}"} for i in range(20)})
    sampler = HybridBatchSampler([parallel, english], SamplerConfig(alpha=0.5, batch_size=2, seed=0))
    seen = Counter((b.corpus, b.kind) for b in sampler.take(400))
    assert seen[("eng", CROSSLINGUAL)] == 0
    assert seen[("eng", MONOLINGUAL)] > 0 and seen[("par", CROSSLINGUAL)] > 0
    with pytest.raises(EmptySelectionError):
        HybridBatchSampler([parallel, english], SamplerConfig(strategy="crosslingual", batch_size=2))


# ----------------------------------------------------------------------------- small languages


def test_small_language_skipped_or_smaller_batches():
    corpus = nested_corpus({"en": 20, "fr": 3})
    strict = HybridBatchSampler(corpus, SamplerConfig(strategy="monolingual", batch_size=4, seed=0))
    assert strict.describe()["corpora"]["nest"]["monolingual_skipped"] == {"fr": 3}
    assert {b.languages for b in strict.take(100)} == {("en",)}
    assert strict.stats.smaller_batches == 0

    loose_cfg = SamplerConfig(strategy="monolingual", batch_size=4, seed=0, allow_smaller_batches=True)
    loose = HybridBatchSampler(corpus, loose_cfg)
    sizes = {b.languages[0]: len(b) for b in loose.take(100)}
    assert sizes == {"en": 4, "fr": 3}
    assert loose.stats.smaller_batches > 0
    # with 2 ranks the 3 French pairs give a global batch of 2: one example per rank
    ranks = [HybridBatchSampler(corpus, loose_cfg, rank=r, world_size=2) for r in range(2)]
    for _ in range(60):
        b0, b1 = global_batches(ranks)
        assert len(b0) == len(b1) == (1 if b0.languages == ("fr",) else 4)


# ----------------------------------------------------------------------------- errors


def test_empty_inputs_are_clear_errors():
    with pytest.raises(EmptySelectionError, match="empty"):
        HybridBatchSampler(ParallelQACorpus("none", []), SamplerConfig())
    with pytest.raises(EmptySelectionError):
        HybridBatchSampler([], SamplerConfig())


def test_crosslingual_impossible_on_single_language_pairs():
    corpus = make_corpus("mono", {f"p{i}": {["en", "de"][i % 2]: f"t{i}"} for i in range(20)})
    for cfg in [SamplerConfig(strategy="crosslingual", batch_size=2), SamplerConfig(alpha=0.5, batch_size=2)]:
        with pytest.raises(EmptySelectionError, match="two languages"):
            HybridBatchSampler(corpus, cfg)
    # hybrid with alpha = 1 never needs a crosslingual batch
    sampler = HybridBatchSampler(corpus, SamplerConfig(alpha=1.0, batch_size=2))
    assert {b.kind for b in sampler.take(20)} == {MONOLINGUAL}


def test_monolingual_impossible_when_every_language_is_too_small():
    corpus = nested_corpus({"en": 3, "de": 2})
    with pytest.raises(EmptySelectionError, match="allow_smaller_batches"):
        HybridBatchSampler(corpus, SamplerConfig(strategy="monolingual", batch_size=4, drop_last=False))


def test_corpus_smaller_than_one_batch():
    corpus = full_corpus(n=3)
    with pytest.raises(EmptySelectionError, match="drop_last"):
        HybridBatchSampler(corpus, SamplerConfig(batch_size=4, allow_smaller_batches=True))
    sampler = HybridBatchSampler(corpus, SamplerConfig(batch_size=4, allow_smaller_batches=True, drop_last=False))
    assert len(sampler) == 1 and len(next(iter(sampler))) == 3


def test_duplicate_pair_ids_rejected():
    corpus = ParallelQACorpus("dup", [ParallelPair("x", {"en": QAEntry("q", "a")})] * 2)
    with pytest.raises(DataFormatError, match="'x'"):
        HybridBatchSampler(corpus, SamplerConfig(batch_size=1))


@pytest.mark.parametrize(
    "options",
    [
        {"batch_size": 0},
        {"batch_size": -3},
        {"batch_size": 2.5},
        {"batch_size": True},
        {"alpha": -0.1},
        {"alpha": 1.01},
        {"alpha": float("nan")},
        {"strategy": "mixed"},
        {"crosslingual_pairing": "per_step"},
        {"language_sampling": "zipf"},
        {"temperature": -1.0},
        {"corpus_weights": {"a": -1.0}},
        {"corpus_weights": {"a": 0.0}},
        {"languages": []},
        {"seed": "7"},
        {"drop_last": "yes"},
    ],
)
def test_invalid_config_rejected(options):
    with pytest.raises(SamplerConfigError) as info:
        SamplerConfig(**options)
    assert isinstance(info.value, PolyirError) and isinstance(info.value, ValueError)


def test_config_from_dict_and_corpus_weight_names():
    with pytest.raises(SamplerConfigError, match="batchsize"):
        SamplerConfig.from_dict({"batchsize": 4})
    cfg = SamplerConfig.from_dict({"batch_size": 4, "languages": ["fr", "en"]})
    assert cfg.languages == ("en", "fr")
    assert SamplerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(SamplerConfigError, match="corpus_weights"):
        HybridBatchSampler(full_corpus("A", n=10), SamplerConfig(batch_size=2, corpus_weights={"B": 1.0}))


def test_stats_to_dict_round_trip_and_counts():
    sampler = HybridBatchSampler(full_corpus(n=30), SamplerConfig(batch_size=3, seed=2))
    batches = list(sampler.take(20))
    d = sampler.stats.to_dict()
    json.dumps(d)
    assert d["batches"] == 20 and d["examples"] == 60
    assert sum(d["kinds"].values()) == 20
    pairs = Counter(f"{q}->{p}" for b in batches for q, p in b.language_pairs)
    assert d["language_pairs"] == dict(sorted(pairs.items()))
    assert sum(d["query_languages"].values()) == sum(d["passage_languages"].values()) == 60
    assert SamplerStats.from_dict(d).to_dict() == d
