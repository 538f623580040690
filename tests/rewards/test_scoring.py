"""Scorer: per-sample reward specs, correctness, and what happens when reward code raises."""

import math

import pytest
import torch

from mmrft.data.schema import Sample
from mmrft.errors import MmrftError
from mmrft.rewards.scoring import RewardError, Scorer, Scores


def _sample(i, answer="3", reward=None, task="count"):
    return Sample(id=f"s{i}", prompt="How many?", answer=answer, task=task, reward=reward)


def test_task_weight_resolves_each_samples_own_reward():
    scorer = Scorer({"task": 1.0, "format": 0.5}, default="exact", workers=0)
    samples = [_sample(0, reward="count"), _sample(1, answer="B", reward="choice", task="compare")]
    texts = ["<think>red circles: top left</think><answer>3</answer>", "The answer is (A)."]
    s = scorer.score(texts, samples)
    assert s.totals.tolist() == [1.5, 0.0]  # count 1 + 0.5 * format 1; choice 0 + 0.5 * format 0
    assert s.correct.tolist() == [1.0, 0.0]
    assert s.components["count"][0] == 1.0 and math.isnan(s.components["count"][1])
    assert s.components["choice"][1] == 0.0 and s.components["format"] == [1.0, 0.0]
    scorer.close()


def test_select_and_concat_keep_rows_aligned():
    a = Scores(totals=torch.tensor([1.0, 0.0]), correct=torch.tensor([1.0, 0.0]), components={"count": [1.0, 0.0]},
               timeouts=1)
    b = Scores(totals=torch.tensor([0.5]), correct=torch.tensor([0.0]), components={"format": [0.5]})
    c = Scores.concat([a, b])
    assert c.totals.tolist() == [1.0, 0.0, 0.5] and c.timeouts == 1
    assert c.components["count"][:2] == [1.0, 0.0] and math.isnan(c.components["count"][2])
    assert c.select([2, 0]).totals.tolist() == [0.5, 1.0]


def test_reward_errors_are_logged_or_raised(caplog):
    samples = [_sample(0), _sample(1)]
    weights = {"tests.rewards.user_rewards:buggy": 1.0}
    logged = Scorer(weights, workers=0, on_error="log")
    scores = logged.score(["boom", "fine"], samples)  # `buggy` raises on "boom"
    assert scores.totals.tolist() == [0.0, 1.0]
    assert len(scores.errors) == 1 and "id='s0'" in scores.errors[0]
    assert "reward error" in caplog.text and "s0" in caplog.text
    strict = Scorer(weights, workers=0, on_error="raise")
    with pytest.raises(RewardError, match="id='s0'"):
        strict.score(["boom", "fine"], samples)
    with pytest.raises(MmrftError, match="rewards.on_error"):
        Scorer(weights, on_error="ignore")
