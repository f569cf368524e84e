"""Splitting a task by document."""

from __future__ import annotations


def test_split_by_document_ignores_an_excluded_copy_in_another_document():
    """A sentence repeated verbatim in a second document excludes that copy, yet belongs to its own."""
    from polyir.data.parallel import build_sentence_task
    from polyir.data.split import split_by_document

    texts = {"en": ["a", "b", "c", "d"], "sn": ["w", "x", "y", "w"]}  # sn line 4 repeats line 1
    task = build_sentence_task("t", texts, documents=["d1", "d1", "d2", "d2"])
    assert "sn:4" in task.excluded["sn:1"]
    first, second = split_by_document(task, 0.5, 0)
    assert {q.id for q in first.queries} | {q.id for q in second.queries} == {q.id for q in task.queries}


def test_split_by_passage_holds_out_whole_paragraphs():
    """validation.group=passage: no held-out question's passage is a training positive (SQuAD-style data,
    several questions per paragraph); a plain pair split leaks them; the same seed gives the same split."""
    from polyir.data.types import ParallelPair, ParallelQACorpus, QAEntry
    from polyir.training.data import split_pairs

    pairs = [ParallelPair(f"q{p}-{q}", {"en": QAEntry(f"question {p}.{q}", f"paragraph {p}"),
                                        "fi": QAEntry(f"kysymys {p}.{q}", f"kappale {p}")})
             for p in range(40) for q in range(5)]
    corpus = ParallelQACorpus("toy", pairs)

    def leaks(train, held):
        train_pos = {e.positive for pair in train.pairs for e in pair.entries.values()}
        return sum(any(e.positive in train_pos for e in pair.entries.values()) for pair in held.pairs)

    train, held = split_pairs(corpus, fraction=0.1, count=None, seed=0, group="passage")
    assert len(held) >= 20 and len(train) + len(held) == len(corpus)
    assert leaks(train, held) == 0
    assert [p.pair_id for p in split_pairs(corpus, fraction=0.1, count=None, seed=0, group="passage")[1].pairs] \
        == [p.pair_id for p in held.pairs]
    plain_train, plain_held = split_pairs(corpus, fraction=0.1, count=None, seed=0)
    assert leaks(plain_train, plain_held) > 0


def test_validation_pool_caps_each_corpus_so_every_corpus_is_scored():
    """validation.max_pairs caps each corpus: a mixed run's validation sees the second corpus too."""
    from polyir.data.types import ParallelPair, ParallelQACorpus, QAEntry
    from polyir.training.validation import answer_pool

    def corpus(name, n):
        return ParallelQACorpus(name, [ParallelPair(f"{name}{i}", {"en": QAEntry(f"{name} q{i}", f"{name} p{i}")})
                                       for i in range(n)])

    pool = answer_pool([corpus("big", 50), corpus("small", 3)], max_pairs=5)
    names = [qid.split(":")[0] for qid in pool.query_ids]
    assert names.count("big") == 5 and names.count("small") == 3
