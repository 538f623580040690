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


@pytest.fixture(scope="session")
def short_turn_model_dir(tmp_path_factory, tiny_model_dir):
    """A copy of the tiny model whose generation config ends a turn at about a quarter of the vocabulary (a random
    model rarely writes its end-of-turn token), so that multi-turn trajectories have several short turns."""
    import json
    import shutil

    out = tmp_path_factory.mktemp("short-turns") / "model"
    shutil.copytree(tiny_model_dir, out)
    gen = json.loads((out / "generation_config.json").read_text())
    eos = gen["eos_token_id"] if isinstance(gen["eos_token_id"], list) else [gen["eos_token_id"]]
    vocab = json.loads((out / "config.json").read_text())["text_config"]["vocab_size"]
    gen["eos_token_id"] = eos + list(range(10, vocab, 4))
    (out / "generation_config.json").write_text(json.dumps(gen))
    return out
