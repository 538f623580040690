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


def _zoom(box, error=None, image_index=0):
    return {"name": "zoom_in", "arguments": {"bbox_2d": box}, "error": error,
            "info": {} if error else {"image_index": image_index, "pixel_box": box}}


REGION = [100, 100, 156, 156]  # a 56-px frame, pixels of the original image


@pytest.mark.parametrize("calls,best,useful", [
    ([], 0.0, (0, 0)),
    ([_zoom([100, 100, 156, 156])], 1.0, (1, 1)),  # exactly the frame
    ([_zoom([0, 0, 448, 448])], 56 * 56 / 448 ** 2, (0, 1)),  # the whole image: wasted
    ([_zoom([100, 100, 156, 184])], 56 * 56 / (56 * 84), (1, 1)),  # IoU 0.667: useful
    ([_zoom([128, 100, 184, 156])], 28 * 56 / (84 * 56), (0, 1)),  # half off: IoU 0.333, wasted
    ([_zoom([0, 0, 448, 448]), _zoom([98, 98, 158, 158])], 56 * 56 / 60 ** 2, (1, 2)),  # second look is the good one
    ([_zoom([100, 100, 156, 156], error="bad_arguments")], 0.0, (0, 0)),  # failed calls are not looks
    ([_zoom([100, 100, 156, 156], image_index=1)], 0.0, (0, 0)),  # a zoom into a crop: other coordinates
])
def test_zoom_iou_and_useful_zooms(calls, best, useful):
    from mmrft.rewards.trajectory import useful_zooms

    s = dict(sample(calls), metadata={"region": REGION})
    assert get_reward("zoom_iou")("<answer>3</answer>", s) == pytest.approx(best)
    assert useful_zooms(s) == useful
    assert get_reward("zoom_iou")("<answer>3</answer>", sample(calls)) == 0.0  # no region: nothing to compare
