"""Shared fixtures: a tiny random BERT with its own tokenizer, and small labelled files."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

from tiny import make_tiny_model, write_sentiment_csv

# Settings under which the tiny model learns the tiny data in a few seconds.
TINY_PLAN = {"learning_rate": 3e-3, "epochs": 6.0}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def sentiment_csv(tmp_path_factory) -> Path:
    return write_sentiment_csv(tmp_path_factory.mktemp("data") / "posts.csv")


@pytest.fixture(scope="session")
def data(sentiment_csv) -> dict:
    """The sentiment file as `inspect_data` reads it (the data dict the recipe takes)."""
    from tuning_core.data import inspect_data

    return inspect_data(sentiment_csv).to_dict()


@pytest.fixture(scope="session")
def labels(data) -> list[str]:
    return list(data["labels"])


@pytest.fixture(scope="module")
def one_thread():
    """The tiny model trains fastest on one thread; two threads on a busy 2-core machine made
    training tests 20x slower (threads spinning). Use with pytestmark usefixtures."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def home(tmp_path) -> Path:
    """A fresh sessions home."""
    path = tmp_path / "home"
    path.mkdir()
    return path
