import json
import time

import pytest

from mmrft.rewards import detection_reward, get_reward
from mmrft.rewards.detection import answer_region, match_detections, normalize_label, parse_detections

from tests.rewards.test_extract import ADVERSARIAL
from tests.rewards.hang_guard import HANG_GUARD_S

TWO = [{"label": "red circle", "bbox": [10, 20, 30, 40]}, {"label": "cat", "bbox": [50, 50, 100, 100]}]
ONE = [{"label": "dog", "bbox": [0, 0, 100, 100]}]
THREE_CARS = [
    {"label": "car", "bbox": [0, 0, 10, 10]},
    {"label": "car", "bbox": [20, 0, 30, 10]},
    {"label": "car", "bbox": [40, 0, 50, 10]},
]


def S(answer=TWO, **metadata):
    return {"id": "d", "answer": answer, "metadata": metadata}


def qwen(*items):
    return json.dumps([{"bbox_2d": box, "label": label} for label, box in items])


RC, CAT = ("red circle", [10, 20, 30, 40]), ("cat", [50, 50, 100, 100])
PERFECT = qwen(RC, CAT)
NORM1000 = {"box_format": "norm1000", "image_size": [100, 100]}
NORM1 = {"box_format": "norm1", "image_size": [100, 100]}

DETECTION_ROWS = [
    # (gold, completion, metadata, expected)
    # --- Qwen2.5-VL JSON
    (TWO, PERFECT, {}, 1.0),
    (TWO, "```json\n" + PERFECT + "\n```", {}, 1.0),
    (TWO, "Sure! Here are the objects I found:\n```json\n" + PERFECT + "\n```\nLet me know if you need more.", {}, 1.0),
    (TWO, "<think>I see a red circle top-left and a cat.</think><answer>" + PERFECT + "</answer>", {}, 1.0),
    (TWO, '[{"label": "Red Circle", "bbox_2d": [10, 20, 30, 40]},\n {"label": "CAT", "bbox_2d": [50, 50, 100, 100]}]',
     {}, 1.0),
    (TWO, '[{"bbox": [10, 20, 30, 40], "name": "red_circle"}, {"box": [50, 50, 100, 100], "category": "the cat"}]',
     {}, 1.0),
    (TWO, qwen(CAT, RC), {}, 1.0),  # order does not matter
    (TWO, qwen(RC), {}, pytest.approx(2 / 3)),  # one missed
    (TWO, qwen(RC, CAT, ("cat", [0, 0, 5, 5])), {}, pytest.approx(0.8)),
    (TWO, qwen(RC, CAT, CAT), {}, pytest.approx(0.8)),  # duplicate = FP
    (TWO, qwen(("blue circle", [10, 20, 30, 40]), CAT), {}, pytest.approx(0.5)),  # wrong label
    (TWO, qwen(("dog", [10, 20, 30, 40]), ("dog", [50, 50, 100, 100])), {}, 0.0),
    (TWO, qwen(("red circle", [20, 20, 30, 40]), CAT), {}, 1.0),  # IoU 0.5 >= 0.5
    (TWO, qwen(("red circle", [21, 20, 30, 40]), CAT), {}, pytest.approx(0.5)),  # IoU 0.45
    (TWO, qwen(("red circle", [21, 20, 30, 40]), CAT), {"iou_threshold": 0.4}, 1.0),
    (TWO, qwen(("red circle", [12, 22, 30, 40]), ("cat", [55, 55, 100, 100])), {"iou_threshold": 0.9}, 0.0),
    (TWO, qwen(("red circle", [100, 200, 300, 400]), ("cat", [500, 500, 1000, 1000])), NORM1000, 1.0),
    (TWO, qwen(("red circle", [0.1, 0.2, 0.3, 0.4]), ("cat", [0.5, 0.5, 1.0, 1.0])), NORM1, 1.0),
    (TWO, PERFECT, NORM1000, 0.0),  # pixel boxes read as 0-1000
    (TWO, qwen(RC, ("cat", [50, 50, 500, 500])), {"image_size": [100, 100]}, 1.0),  # clipped to the image
    (TWO, qwen(("red circle", [30, 40, 10, 20]), CAT), {}, pytest.approx(0.5)),  # reversed box: FP
    (TWO, '[{"bbox_2d": [10, 20, 30, 40]}, {"bbox_2d": [50, 50, 100, 100]}]', {}, 0.0),  # no labels
    (TWO, "[[10, 20, 30, 40], [50, 50, 100, 100]]", {}, 0.0),
    # --- truncated / sloppy JSON: complete objects count
    (TWO, '[{"bbox_2d": [10, 20, 30, 40], "label": "red circle"}, {"bbox_2d": [50, 50, 1', {}, pytest.approx(2 / 3)),
    (TWO, "[{'bbox_2d': [10, 20, 30, 40], 'label': 'red circle'}, {'bbox_2d': [50, 50, 100, 100], 'label': 'cat'}]",
     {}, 1.0),
    (TWO, '{"bbox_2d": [10, 20, 30, 40], "label": "red circle"}\n{"bbox_2d": [50, 50, 100, 100], "label": "cat"}',
     {}, 1.0),
    (TWO, '{"objects": [{"bbox_2d": [10, 20, 30, 40], "label": "red circle"},\n'
          '             {"bbox_2d": [50, 50, 100, 100], "label": "cat"}]}', {}, 1.0),
    (ONE, '{"bbox_2d": [0, 0, 100, 100], "label": "dog"}', {}, 1.0),
    # --- plain-text forms
    (TWO, "red circle: [10, 20, 30, 40]\ncat: [50, 50, 100, 100]", {}, 1.0),
    (TWO, "1. Red circle - [10, 20, 30, 40]\n2. Cat - [50, 50, 100, 100]", {}, 1.0),
    (TWO, "- **red circle**: (10, 20), (30, 40)\n- **cat**: (50,50) to (100,100)", {}, 1.0),
    (TWO, "<answer>The red circle is at [10,20,30,40]. The cat is located at [50, 50, 100, 100].</answer>", {}, 1.0),
    (TWO, "Here are the boxes: red circle [10,20,30,40], cat [50,50,100,100]", {}, 1.0),
    (TWO, "red circle (small): [10, 20, 30, 40]; cat: [50, 50, 100, 100]", {}, 1.0),
    (TWO, "<|object_ref_start|>red circle<|object_ref_end|><|box_start|>(10,20),(30,40)<|box_end|>"
          "<|object_ref_start|>cat<|object_ref_end|><|box_start|>(50,50),(100,100)<|box_end|>", {}, 1.0),
    (TWO, "red circle: [10, 20, 30, 40]\ncat: not visible", {}, pytest.approx(2 / 3)),
    (TWO, "There is a red circle and a cat in the image.", {}, 0.0),
    # --- many instances of one class: one-to-one matching
    (THREE_CARS, qwen(("car", [0, 0, 10, 10]), ("car", [20, 0, 30, 10]), ("car", [40, 0, 50, 10])), {}, 1.0),
    (THREE_CARS, qwen(("car", [40, 0, 50, 10]), ("car", [0, 0, 10, 10]), ("car", [20, 0, 30, 10])), {}, 1.0),
    (THREE_CARS, qwen(("car", [0, 0, 10, 10])), {}, pytest.approx(0.5)),
    (THREE_CARS, qwen(*[("car", [0, 0, 10, 10])] * 3), {}, pytest.approx(1 / 3)),  # three boxes on one car
    (THREE_CARS, qwen(("car", [1, 0, 11, 10]), ("car", [0, 0, 10, 10])), {}, pytest.approx(0.4)),  # both on one car
    (THREE_CARS, qwen(*[(g["label"], g["bbox"]) for g in THREE_CARS] * 20), {}, pytest.approx(6 / 63)),  # spam
    # --- empty gold / empty prediction
    ([], "[]", {}, 1.0),
    ([], "<think>I looked everywhere.</think><answer>[]</answer>", {}, 1.0),
    ([], "There are no red circles in this image.", {}, 1.0),
    ([], "<answer>none</answer>", {}, 1.0),
    ([], qwen(("cat", [1, 2, 3, 4])), {}, 0.0),
    ([], "<think>there is a cat at [1,2,3,4]? no.</think><answer>[]</answer>", {}, 1.0),  # think is not searched
    (TWO, "[]", {}, 0.0),
    (TWO, "I could not find any objects.", {}, 0.0),
    # --- no answer at all scores 0, even against an empty gold
    ([], "<think>Let me look at the image carefully. I see", {}, 0.0),
    ([], "<answer></answer>", {}, 0.0),
    ([], "", {}, 0.0),
    ([], None, {}, 0.0),
    (TWO, "<think>The red circle is at [10,20,30,40] and the cat", {}, 0.0),
    (TWO, "<answer>the objects</answer> red circle: [10,20,30,40], cat: [50,50,100,100]", {}, 1.0),  # after block
    (TWO, '[{"bbox_2d": [1e999, 20, 30, 40], "label": "red circle"}, {"bbox_2d": [50, 50, 100, 100], "label": "cat"}]',
     {}, pytest.approx(0.5)),
    (TWO, '[{"bbox_2d": "10,20,30,40", "label": "red circle"}]', {}, pytest.approx(2 / 3)),
]


@pytest.mark.parametrize("gold,completion,metadata,expected", DETECTION_ROWS)
def test_detection(gold, completion, metadata, expected):
    assert detection_reward(completion, S(gold, **metadata)) == expected


def test_registered():
    assert get_reward("detection") is detection_reward


def test_gold_box_format():
    md = {"answer_box_format": "norm1", "image_size": [100, 100]}
    gold = [{"label": "cat", "bbox": [0.5, 0.5, 1.0, 1.0]}]
    assert detection_reward(qwen(CAT), S(gold, **md)) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "gold,metadata",
    [
        ("cat", {}),
        ({"label": "cat", "bbox": [1, 2, 3, 4]}, {}),
        ([{"label": "cat"}], {}),
        ([{"bbox": [1, 2, 3, 4]}], {}),
        ([{"label": "  ", "bbox": [1, 2, 3, 4]}], {}),
        ([{"label": "cat", "bbox": [3, 4, 1, 2]}], {}),
        ([["cat", [1, 2, 3, 4]]], {}),
        (TWO, {"iou_threshold": 1.5}),
        (TWO, {"iou_threshold": "0.5"}),
        (TWO, {"box_format": "xywh"}),
        (TWO, {"box_format": "norm1000"}),  # needs image_size
    ],
)
def test_bad_sample_raises(gold, metadata):
    with pytest.raises(ValueError):
        detection_reward(PERFECT, S(gold, **metadata))


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("Red Circle", "red circle"),
        ("red_circle", "red circle"),
        ("the  cat.", "cat"),
        ("A traffic-light", "traffic light"),
        (None, ""),
    ],
)
def test_normalize_label(raw, expected):
    assert normalize_label(raw) == expected


def test_parse_and_match_helpers():
    assert parse_detections("cat: [1, 2, 3, 4]") == [("cat", (1.0, 2.0, 3.0, 4.0))]
    assert parse_detections("[]") == [] and parse_detections(None) == []
    assert answer_region("<think>x</think> y ") == " y "
    assert answer_region("<think>x") is None
    pred = [("car", (0, 0, 10, 10)), ("car", (0, 0, 10, 10))]
    gold = [("car", (0, 0, 10, 10)), ("car", (1, 0, 11, 10))]
    assert match_detections(pred, gold, 0.5) == 2  # one-to-one: the duplicate takes the second gold


@pytest.mark.parametrize("name", sorted(ADVERSARIAL) + ["objects", "brackets", "json_list"])
def test_hostile_completions(name):
    extra = {
        "objects": '{"label": "cat", "bbox_2d": [' * 20_000,
        "brackets": "cat: [1, 2, 3, 4] " * 10_000,
        "json_list": qwen(*[("cat", [1, 2, 3, 4])] * 20_000),
    }
    text = ADVERSARIAL.get(name) or extra[name]
    t0 = time.perf_counter()
    score = detection_reward(text, S())
    assert score == 0.0
    assert time.perf_counter() - t0 < HANG_GUARD_S
