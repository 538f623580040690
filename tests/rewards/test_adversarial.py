"""Every built-in grader on hostile completions: no exception, score 0, bounded time."""

import time

import pytest

import mmrft.rewards.math as math_mod
from mmrft.rewards import get_reward

from tests.rewards.test_extract import ADVERSARIAL

SAMPLES = {
    "format": {"answer": "3", "metadata": {}},
    "answer_format": {"answer": "3", "metadata": {}},
    "exact": {"answer": "3", "metadata": {}},
    "numeric": {"answer": 3, "metadata": {}},
    "count": {"answer": 3, "metadata": {}},
    "math": {"answer": "3", "metadata": {}},
    "choice": {"answer": "B", "metadata": {"options": ["cat", "dog", "bird"]}},
    "iou": {"answer": [10, 20, 30, 40], "metadata": {"box_format": "norm1000", "image_size": [640, 480]}},
}
EXTRA = {
    "huge_exponent": "The answer is 1e99999999",
    "neg_huge_exponent": "\\boxed{-1e99999999}",
    "nul_and_unicode": "\x00\ud7ff\u2212\u00b2" * 1000,
    "deep_latex": "\\boxed{" + "\\frac{" * 300 + "1" + "}{2}" * 300 + "}",
    "many_numbers": "1, " * 30_000,
}
INPUTS = {**ADVERSARIAL, **EXTRA}


@pytest.mark.parametrize("reward", sorted(SAMPLES))
def test_hostile_completions_score_zero_quickly(reward, monkeypatch):
    monkeypatch.setattr(math_mod, "TIMEOUT_S", 1)
    fn = get_reward(reward)
    slow = []
    for name, text in INPUTS.items():
        t0 = time.perf_counter()
        score = fn(text, SAMPLES[reward])
        dt = time.perf_counter() - t0
        assert score == 0.0, (reward, name, score)
        if dt > (3.0 if reward == "math" else 1.0):
            slow.append((name, round(dt, 2)))
    assert not slow, slow
