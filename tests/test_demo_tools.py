"""The tools demo's gain figures: paired by item, with a bootstrap interval (no model needed)."""

import pytest

from mmrft.demo_tools import gain_note, paired_gain
from mmrft.eval.runner import EvalResult


def scored(correct: dict[str, bool]) -> EvalResult:
    n = len(correct)
    acc = sum(correct.values()) / n
    return EvalResult({"zoom_named": {"accuracy": acc, "reward": acc, "n": n}},
                      [{"id": i, "task": "zoom_named", "correct": c} for i, c in correct.items()])


def test_gain_pairs_items_by_id_not_by_position():
    # the same answers in another order: no gain, and no spread (a by-position pairing would give d = -1, +1)
    a = scored({"x": True, "y": False})
    b = scored({"y": False, "x": True})
    g = paired_gain(a, b)
    assert (g["points"], g["low"], g["high"], g["p_value"], g["n"]) == (0.0, 0.0, 0.0, 1.0, 2)


def test_gain_every_item_gained():
    # d = 1 on every item: +100 points, every resample +100, p = 1 / (R + 1) with R = 10000
    g = paired_gain(scored({"a": False, "b": False, "c": False}), scored({"a": True, "b": True, "c": True}))
    assert (g["points"], g["low"], g["high"]) == (100.0, 100.0, 100.0)
    assert g["p_value"] == pytest.approx(1 / 10001)


def test_gain_interval_brackets_the_mean():
    # d = +1, +1, 0, -1 over four items: delta = 1/4; resample means lie in [-1, 1] on a grid of 1/4
    a = scored({"a": False, "b": False, "c": True, "d": True})
    b = scored({"a": True, "b": True, "c": True, "d": False})
    g = paired_gain(a, b)
    assert g["points"] == 25.0
    assert -100.0 <= g["low"] < 25.0 < g["high"] <= 100.0
    assert 0.0 < g["p_value"] <= 1.0


def test_gain_refuses_different_items():
    with pytest.raises(ValueError, match="different items"):
        paired_gain(scored({"a": True}), scored({"b": True}))


def test_gain_note_names_the_recipes():
    names = {"tools_sft": "(b) SFT with tools", "tools_grpo": "(c) SFT+GRPO with tools"}
    note = gain_note({"tools_sft->tools_grpo": {"points": 9.0, "low": 2.5, "high": 15.5, "n": 200}}, names)
    assert note == "\n(c) - (b): +9.0 points (95 % paired bootstrap interval +2.5 to +15.5, 200 items)"
