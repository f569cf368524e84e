"""Data layer: typed records, readers for LAReQA / JSONL, and the dataset registry."""
