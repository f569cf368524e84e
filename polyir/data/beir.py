"""A retrieval task written in BEIR's folder layout, for tools that read BEIR datasets.

``FOLDER/corpus.jsonl``   one candidate per line: ``{"_id", "title", "text", "language", "metadata"?}``
``FOLDER/queries.jsonl``  one query per line: ``{"_id", "text", "language", "metadata": {"pair_id"}}``
``FOLDER/qrels/test.tsv`` ``query-id <tab> corpus-id <tab> score`` with that header, score 1

BEIR's loaders read ``_id``, ``title`` and ``text`` and ignore the other keys; polyir reads the corpus
back with ``polyir index --corpus FOLDER/corpus.jsonl --corpus-format beir --language-field language``.
A task whose queries leave candidates out of their own ranking (``RetrievalTask.excluded``, e.g. a
sentence and its identical copies in NTREX) has no BEIR equivalent: those pairs are written to
``FOLDER/excluded.tsv`` (same columns) so that an evaluation can drop them again.
"""

from __future__ import annotations

import json
from pathlib import Path

from polyir.atomic import atomic_text
from polyir.data.types import RetrievalTask
from polyir.errors import EmptySelectionError

QRELS_HEADER = "query-id\tcorpus-id\tscore"


def write_beir(task: RetrievalTask, folder: Path | str, split: str = "test") -> dict[str, Path]:
    """Write ``task`` in BEIR's layout under ``folder`` (each file atomically); returns the paths."""
    folder = Path(folder)
    if not task.queries or not task.candidates:
        raise EmptySelectionError(f"{task.name}: nothing to write (no queries or no candidates)")
    paths = {"corpus": folder / "corpus.jsonl", "queries": folder / "queries.jsonl",
             "qrels": folder / "qrels" / f"{split}.tsv"}
    with atomic_text(paths["corpus"]) as out:
        for c in task.candidates:
            rec: dict[str, object] = {"_id": c.id, "title": "", "text": c.text, "language": c.language}
            if c.group:
                rec["metadata"] = {"group": c.group}
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
    with atomic_text(paths["queries"]) as out:
        for q in task.queries:
            rec = {"_id": q.id, "text": q.text, "language": q.language, "metadata": {"pair_id": q.pair_id}}
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
    with atomic_text(paths["qrels"]) as out:
        out.write(QRELS_HEADER + "\n")
        for q in task.queries:
            for cid in sorted(task.relevant.get(q.id, ())):
                out.write(f"{q.id}\t{cid}\t1\n")
    if task.excluded:
        paths["excluded"] = folder / "excluded.tsv"
        with atomic_text(paths["excluded"]) as out:
            out.write(QRELS_HEADER + "\n")
            for q in task.queries:
                for cid in sorted(task.excluded.get(q.id, ())):
                    out.write(f"{q.id}\t{cid}\t0\n")
    return paths
