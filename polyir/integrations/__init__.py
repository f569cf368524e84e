"""polyir inside other libraries' training loops (sentence-transformers): batch samplers, evaluators, rows.

- :func:`polyir_batch_sampler` / :class:`PolyirBatchSampler`: polyir's hybrid, monolingual and
  cross-lingual batches as ``SentenceTransformerTrainingArguments(batch_sampler=...)``;
- :func:`corpus_to_rows`: polyir corpora as the language-pair rows that sampler draws from;
- :class:`LareqaEvaluator`: Mo./Cr./Mul. mAP and rank distance, computed by polyir, as a
  sentence-transformers evaluator.

Importing this package needs ``sentence-transformers`` and ``datasets``.
"""

from polyir.integrations.st_data import RowColumns, corpus_to_rows, rows_to_corpora
from polyir.integrations.st_evaluator import LareqaEvaluator, settings_of
from polyir.integrations.st_sampler import PolyirBatchSampler, polyir_batch_sampler

__all__ = [
    "RowColumns",
    "corpus_to_rows",
    "rows_to_corpora",
    "PolyirBatchSampler",
    "polyir_batch_sampler",
    "LareqaEvaluator",
    "settings_of",
]
