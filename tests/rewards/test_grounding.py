import time

import pytest

from mmrft.rewards import box_iou, iou_reward
from mmrft.rewards.grounding import parse_box
from tests.rewards.hang_guard import HANG_GUARD_S

GOLD = [10, 20, 30, 40]


def S(answer=GOLD, **metadata):
    return {"id": "g", "answer": answer, "metadata": metadata}


IOU_ROWS = [
    # (completion, metadata, expected)
    ("[10,20,30,40]", {}, 1.0),
    ("<answer>[10, 20, 30, 40]</answer>", {}, 1.0),
    ("The box is (10, 20), (30, 40).", {}, 1.0),
    ("(10,20) to (30,40)", {}, 1.0),
    ("<|box_start|>(10,20),(30,40)<|box_end|>", {}, 1.0),
    ('```json\n[{"bbox_2d": [10, 20, 30, 40], "label": "cat 2"}]\n```', {}, 1.0),
    ("<think>the cat is top-left</think><answer>{'bbox': [10.0, 20.0, 30.0, 40.0]}</answer>", {}, 1.0),
    ("x1=10, y1=20, x2=30, y2=40", {}, 1.0),
    ("<answer>the cat</answer> located at [10,20,30,40]", {}, 1.0),  # fallback to whole completion
    ("[20,20,30,40]", {}, 0.5),
    ("[10,20,30,30]", {}, 0.5),
    ("[10,20,30,40] and [0,0,5,5]", {}, 1.0),  # first box counts
    ("[100,200,300,400]", {"box_format": "norm1000", "image_size": [100, 100]}, 1.0),
    ("[0.1,0.2,0.3,0.4]", {"box_format": "norm1", "image_size": [100, 100]}, 1.0),
    ("[50,100,150,200]", {"box_format": "norm1000", "image_size": [200, 200]}, 1.0),
    ("[10,20,30,40]", {"box_format": "norm1000", "image_size": [100, 100]}, 0.0),
    ("[20,20,30,40]", {"iou_threshold": 0.5}, 1.0),
    ("[21,20,30,40]", {"iou_threshold": 0.5}, 0.0),
    ("[-50,-50,30,40]", {"image_size": [100, 100]}, pytest.approx(400 / 1200)),  # clipped to [0,0,30,40]
    ("[30,40,10,20]", {}, 0.0),  # x2 < x1
    ("[10,20,10,40]", {}, 0.0),  # zero width
    ("[100,100,200,200]", {}, 0.0),  # no overlap
    ("[10,20,30]", {}, 0.0),
    ("[1e999,20,30,40]", {}, 0.0),
    ("The cat is in the top left.", {}, 0.0),
    ("<think>the box is [10,", {}, 0.0),
    ("", {}, 0.0),
    (None, {}, 0.0),
]


@pytest.mark.parametrize("completion,metadata,expected", IOU_ROWS)
def test_iou(completion, metadata, expected):
    assert iou_reward(completion, S(**metadata)) == expected


def test_gold_in_other_formats():
    assert iou_reward("[10,20,30,40]", S("[10, 20, 30, 40]")) == 1.0
    md = {"answer_box_format": "norm1", "image_size": [100, 100]}
    assert iou_reward("[10,20,30,40]", S([0.1, 0.2, 0.3, 0.4], **md)) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "gold,metadata",
    [
        ([1, 2, 3], {}),
        ([30, 40, 10, 20], {}),
        ("no box", {}),
        (GOLD, {"box_format": "norm1000"}),  # needs image_size
        (GOLD, {"box_format": "xywh"}),
        (GOLD, {"image_size": [0, 10]}),
        (GOLD, {"iou_threshold": "high"}),
    ],
)
def test_iou_bad_sample_raises(gold, metadata):
    with pytest.raises(ValueError):
        iou_reward("[10,20,30,40]", S(gold, **metadata))


BOX_IOU_ROWS = [
    ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
    ([0, 0, 10, 10], [5, 0, 15, 10], 1 / 3),
    ([0, 0, 10, 10], [10, 0, 20, 10], 0.0),
    ([0, 0, 10, 10], [2, 2, 4, 4], 0.04),
    ([0, 0, 0, 10], [0, 0, 10, 10], 0.0),
    ([0, 0, 10, 10], [0, 0, float("nan"), 10], 0.0),
    ([0, 0, 10], [0, 0, 10, 10], 0.0),
    ("abcd", [0, 0, 10, 10], 0.0),
]


@pytest.mark.parametrize("a,b,expected", BOX_IOU_ROWS)
def test_box_iou(a, b, expected):
    assert box_iou(a, b) == pytest.approx(expected)
    assert box_iou(b, a) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text",
    [
        "[" + "1," * 50_000 + "]",
        "box:" + " " * 100_000 + "x",
        "(1,2)" + " " * 100_000 + "x",
        "(" * 100_000,
        "1" * 100_000,
    ],
)
def test_parse_box_is_fast_on_adversarial_inputs(text):
    t0 = time.perf_counter()
    parse_box(text)
    iou_reward(text, S())
    assert time.perf_counter() - t0 < HANG_GUARD_S
