"""polyir: train and evaluate multilingual dense retrievers with hybrid batches."""

__version__ = "0.1.0"
