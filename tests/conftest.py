"""Shared fixtures: one tiny model and small synthetic datasets per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from mmrft.data.synthetic import tokenizer_corpus
    from mmrft.models.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", corpus=tokenizer_corpus(50), seed=0)


@pytest.fixture(scope="session")
def count_data(tmp_path_factory):
    from mmrft.data.synthetic import write_dataset

    root = tmp_path_factory.mktemp("count")
    return {
        "train": write_dataset("count", 32, root / "train", seed=1),
        "test": write_dataset("count", 8, root / "test", seed=2),
    }
