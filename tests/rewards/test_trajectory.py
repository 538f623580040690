"""Trajectory-aware rewards against tables of real-looking multi-turn records."""

import pytest

from mmrft.rewards import get_reward

ZOOM = {"name": "zoom_in", "arguments": {"bbox_2d": [0, 0, 500, 500]}, "error": None}
BAD = {"name": "zoom_in", "arguments": {"bbox_2d": [1200, 0, 1300, 80]}, "error": "bad_arguments"}
PARSE = {"name": None, "arguments": None, "error": "parse_error"}


def sample(calls, answer="3", grader="count"):
    return {"id": "s", "answer": answer, "task": "count", "metadata": {}, "task_reward": grader,
            "trajectory": {"turns": len(calls) + 1, "calls": calls, "failed_calls": sum(bool(c["error"]) for c in calls),
                           "images": sum(c["error"] is None for c in calls), "end": "answer", "env_reward": None}}


@pytest.mark.parametrize("completion,calls,expected", [
    ("<think>three circles</think><answer>3</answer>", [ZOOM], 1.0),  # right, and a call that worked
    ("<think>three circles</think><answer>3</answer>", [BAD, ZOOM], 1.0),  # a failed call before a good one
    ("<think>four circles</think><answer>4</answer>", [ZOOM], 0.0),  # wrong answer: no bonus
    ("<think>three circles</think><answer>3</answer>", [], 0.0),  # right without looking: no bonus
    ("<think>three circles</think><answer>3</answer>", [BAD, PARSE], 0.0),  # only failed calls
    ("<answer>3</answer>", [ZOOM, ZOOM], 1.0),
])
def test_tool_bonus(completion, calls, expected):
    assert get_reward("tool_bonus")(completion, sample(calls)) == expected


def test_tool_bonus_uses_the_samples_own_grader_and_needs_a_trajectory():
    right = "<answer>B</answer>"
    s = sample([ZOOM], answer="B", grader="choice")
    assert get_reward("tool_bonus")(right, s) == 1.0
    assert get_reward("tool_bonus")("<answer>C</answer>", s) == 0.0
    assert get_reward("tool_bonus")("<answer>blue</answer>", dict(s, metadata={"options": ["red", "blue"]})) == 1.0
    assert get_reward("tool_bonus")(right, {"id": "x", "answer": "B", "task": "t", "metadata": {}}) == 0.0
    assert get_reward("tool_bonus")(right, dict(s, task_reward="tool_bonus")) == 0.0  # no recursion


@pytest.mark.parametrize("calls,expected", [([], 0.0), ([ZOOM], 0.0), ([BAD], -1.0), ([BAD, ZOOM], -0.5),
                                            ([PARSE, BAD, ZOOM, ZOOM], -0.5)])
def test_tool_failures(calls, expected):
    assert get_reward("tool_failures")("<answer>3</answer>", sample(calls)) == expected
    assert get_reward("tool_failures")("x", {"id": "x", "answer": "3", "metadata": {}}) == 0.0
