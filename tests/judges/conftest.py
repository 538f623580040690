"""Fixtures of the judge tests: one tiny Qwen2-VL judge model per session (random weights, built here), requests."""

from __future__ import annotations

import socket

import pytest

# The test prompt: short, so that a random tiny model answers fast; its words are in the tokenizer's corpus.
SHORT_TEMPLATE = "Question: {question}\nReference: {gold}\nResponse: {completion}\nIs the response correct? yes or no"


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread():
    """The tiny models run on one thread here: on a busy 2-core machine, two threads contend with the other
    processes and the tests take several times longer. Restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def judge_model_dir(tmp_path_factory):
    from mmrft.judges.prompts import TEMPLATES
    from mmrft.models.tiny import make_tiny_model

    corpus = [SHORT_TEMPLATE] * 100 + list(TEMPLATES.values()) * 20 + ["How many red circles are in the image?"] * 50
    return make_tiny_model(tmp_path_factory.mktemp("judge") / "model", arch="qwen2_vl", corpus=corpus, seed=0)


@pytest.fixture(scope="session")
def image_files(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("images")
    paths = []
    for i, colour in enumerate([(255, 0, 0), (0, 128, 255)]):
        im = Image.new("RGB", (96, 80), colour)
        for x in range(10, 30):
            im.putpixel((x, 20 + i), (0, 0, 0))
        path = root / f"im{i}.png"
        im.save(path)
        paths.append(str(path))
    return paths


def make_requests(n: int, images=(), **fields):
    from mmrft.judges.base import JudgeRequest

    out = []
    for i in range(n):
        values = dict(sample_id=f"s{i}", question=f"How many red circles are in the image? ({i})",
                      completion=f"<think>I count {i % 4 + 1}</think><answer>{i % 4 + 1}</answer>",
                      answer=str(i % 4 + 1), gold=str((i + 1) % 4 + 1), images=tuple(images))
        values.update(fields)
        out.append(JudgeRequest(**values))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def yes_no_tokens(tokenizer) -> tuple[int, int]:
    """Single-token ids of "yes" and "no" in `tokenizer` (with or without a leading space)."""
    found = {}
    for word in ("yes", "no"):
        for spelling in (word, " " + word, word.capitalize(), " " + word.capitalize()):
            ids = tokenizer.encode(spelling, add_special_tokens=False)
            if len(ids) == 1:
                found[word] = ids[0]
                break
    return found["yes"], found["no"]


def splitting_bias(margins: list[float]) -> float:
    """A bias b on "no" that splits the requests: the midpoint of the widest gap between the sorted margins
    logit(yes) - logit(no), so that with "no" raised by b, requests above it say yes and those below say no, and no
    margin is near b (float noise cannot flip a verdict)."""
    values = sorted(margins)
    gaps = [(values[i + 1] - values[i], i) for i in range(len(values) - 1)]
    _, i = max(gaps)
    return (values[i] + values[i + 1]) / 2
