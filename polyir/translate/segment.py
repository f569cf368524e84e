"""Cut a QA entry into the sentences a translation model sees, and put the translations back together.

An entry is translated sentence by sentence so that the sentence holding the answer stays known:

* with a ``context`` that contains the ``positive`` (LAReQA: the positive is the answer sentence of
  its paragraph), the context is cut into the text before the positive, the positive itself, and the
  text after it; before and after are split into sentences. The translated positive is the
  translation of that one segment and the translated context the join of all of them, so every
  sentence candidate of the paragraph survives translation one to one;
* otherwise the positive (a paragraph, as in squad2-fi) is split into sentences and joined back;
  a context that does not contain it is split and translated on its own;
* the query is one segment (questions are not split).

Sentences are split by ``sentencex`` (rule-based, ~300 languages) in the source language; translated
sentences are joined by a space, or by nothing for languages written without spaces (zh, ja, th, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sentencex import segment

from polyir.data.types import QAEntry

NO_SPACE = frozenset({"zh", "zh-hant", "ja", "th", "lo", "my", "km", "bo", "dz", "yue"})


def split_sentences(text: str, language: str) -> list[str]:
    """The sentences of ``text`` (stripped, non-empty), in order."""
    out = [s.strip() for s in segment(language.split("-")[0], text)]
    return [s for s in out if s] or ([text.strip()] if text.strip() else [])


def join_sentences(sentences: Sequence[str], language: str) -> str:
    """Translated sentences as one text in ``language``."""
    sep = "" if language in NO_SPACE else " "
    return sep.join(s.strip() for s in sentences if s.strip())


@dataclass(frozen=True)
class Layout:
    """Where an entry's pieces sit in its list of segments: ``segments[0]`` is the query."""

    segments: tuple[str, ...]
    positive: tuple[int, int]  # [start, stop) of the positive's segments
    context: tuple[int, int] | None  # [start, stop) of the context's segments (None: no context)


def layout(entry: QAEntry, language: str) -> Layout:
    """Segments of one entry: query, then positive / context sentences (rules in the module docstring)."""
    segments = [entry.query.strip()]
    context = entry.context
    at = context.find(entry.positive) if context else -1
    if context and at >= 0:
        before = split_sentences(context[:at], language) if context[:at].strip() else []
        after_text = context[at + len(entry.positive):]
        after = split_sentences(after_text, language) if after_text.strip() else []
        start = 1 + len(before)
        segments += [*before, entry.positive.strip(), *after]
        return Layout(tuple(segments), (start, start + 1), (1, len(segments)))
    positive = split_sentences(entry.positive, language)
    segments += positive
    span = (1, len(segments))
    ctx = None
    if context and context.strip():
        extra = split_sentences(context, language)
        ctx = (len(segments), len(segments) + len(extra))
        segments += extra
    return Layout(tuple(segments), span, ctx)


def assemble(lay: Layout, translated: Sequence[str], language: str) -> QAEntry | None:
    """The translated entry, or ``None`` when its query or positive came out empty."""
    query = translated[0].strip()
    positive = join_sentences(translated[lay.positive[0]:lay.positive[1]], language)
    if not query or not positive:
        return None
    context = None
    if lay.context is not None:
        context = join_sentences(translated[lay.context[0]:lay.context[1]], language) or None
    return QAEntry(query=query, positive=positive, context=context)
