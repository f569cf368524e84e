"""Search a multilingual corpus with a trained retriever: corpus reading, sharded encoding,
vector index backends (FAISS flat / HNSW / IVF-PQ, Qdrant), the index folder and search itself."""

from polyir.index.corpus import Passage, corpus_from_dataset, read_corpus_jsonl
from polyir.index.search import Hit, search
from polyir.index.store import SearchIndex, build_index, open_index

__all__ = [
    "Hit",
    "Passage",
    "SearchIndex",
    "build_index",
    "corpus_from_dataset",
    "open_index",
    "read_corpus_jsonl",
    "search",
]
