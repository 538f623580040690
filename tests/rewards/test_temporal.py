import time

import pytest

from mmrft.rewards import get_reward, temporal_iou_reward
from mmrft.rewards.temporal import interval_iou, parse_interval

from tests.rewards.test_extract import ADVERSARIAL
from tests.rewards.hang_guard import HANG_GUARD_S

GOLD = [3.5, 7.0]


def S(answer=GOLD, **metadata):
    return {"id": "t", "answer": answer, "metadata": metadata}


TEMPORAL_ROWS = [
    # (gold, completion, metadata, expected)
    (GOLD, "[3.5, 7.0]", {}, 1.0),
    (GOLD, "<think>The man starts jumping around 3.5s and lands at 7s.</think><answer>[3.5, 7.0]</answer>", {}, 1.0),
    (GOLD, "The event happens from 3.5 to 7 seconds.", {}, 1.0),
    (GOLD, "3.5 - 7.0s", {}, 1.0),
    (GOLD, "3.5s-7s", {}, 1.0),
    (GOLD, "3.5 – 7 s", {}, 1.0),
    (GOLD, "between 3.5 and 7 seconds", {}, 1.0),
    (GOLD, "00:03.5-00:07", {}, 1.0),
    (GOLD, "0:03.5 to 0:07", {}, 1.0),
    (GOLD, "00:00:03.5 - 00:00:07.0", {}, 1.0),
    (GOLD, "The answer is 3.5 ~ 7.0.", {}, 1.0),
    (GOLD, "**Answer:** from 3.5s until 7s", {}, 1.0),
    (GOLD, "It starts at 3.5 s and ends at 7 s.", {}, 1.0),  # exactly two times
    (GOLD, '{"start": 3.5, "end": 7.0}', {}, 1.0),
    (GOLD, "<answer>\\boxed{[3.5, 7]}</answer>", {}, 1.0),
    (GOLD, "from 0.0583 to 0.1167 minutes", {}, pytest.approx(1.0, abs=1e-2)),  # unit applies to both
    (GOLD, "[3.5, 5.25]", {}, pytest.approx(0.5)),
    (GOLD, "[0, 7]", {}, pytest.approx(0.5)),
    (GOLD, "[5, 9]", {}, pytest.approx(2 / 5.5)),
    (GOLD, "[0, 3.5]", {}, 0.0),  # touching, no overlap
    (GOLD, "[10, 20]", {}, 0.0),
    (GOLD, "[7, 3.5]", {}, 0.0),  # reversed
    (GOLD, "[5, 5]", {}, 0.0),  # zero length
    (GOLD, "from 3 to 8 seconds", {}, pytest.approx(0.7)),
    (GOLD, "from 3 to 8 seconds", {"iou_threshold": 0.5}, 1.0),
    (GOLD, "from 3 to 8 seconds", {"iou_threshold": 0.75}, 0.0),
    (GOLD, "[3.5, 7.0]", {"iou_threshold": 1.0}, 1.0),
    (GOLD, "The clip is 30 seconds long; the action spans 3.5-7.", {}, 1.0),
    (GOLD, "At 3.5 seconds.", {}, 0.0),  # one time only
    (GOLD, "The action occurs at 3.5, 5 and 7 seconds", {}, pytest.approx(1.5 / 3.5)),  # first range: 3.5, 5
    (GOLD, "Times: 1 2 3", {}, 0.0),  # three loose numbers, no range
    (GOLD, "The person is jumping.", {}, 0.0),
    (GOLD, "<think>Looking at frames 3 to 7", {}, 0.0),  # truncated in think
    (GOLD, "<think>[3.5, 7.0]</think><answer>I am not sure.</answer>", {}, 0.0),  # think is not searched
    (GOLD, "<answer>the jump</answer> happens from 3.5 to 7 s", {}, 1.0),  # fallback after the block
    (GOLD, "", {}, 0.0),
    (GOLD, None, {}, 0.0),
    (GOLD, "[1e999, 7]", {}, 0.0),
    ([60, 120], "from 1 to 2 minutes", {}, 1.0),
    ([60, 120], "1:00-2:00", {}, 1.0),
    ([60, 120], "01:00 - 02:00", {}, 1.0),
    ([60, 120], "[60, 120]", {}, 1.0),
    ([60, 120], "from 1 to 2", {}, 0.0),  # seconds without a unit
    ([0, 2.5], "0 - 2.5s", {}, 1.0),
    ([0, 2.5], ".5 - 2.5", {}, pytest.approx(0.8)),
    ("3.5-7", "3.5 to 7", {}, 1.0),  # gold as a string
    ("00:03.5 - 00:07", "[3.5, 7]", {}, 1.0),
]


@pytest.mark.parametrize("gold,completion,metadata,expected", TEMPORAL_ROWS)
def test_temporal_iou(gold, completion, metadata, expected):
    assert temporal_iou_reward(completion, S(gold, **metadata)) == expected


def test_registered_and_helpers():
    assert get_reward("temporal_iou") is temporal_iou_reward
    assert parse_interval("1:05:30 to 1:05:40") == (3930.0, 3940.0)
    assert parse_interval("no times") is None
    assert interval_iou((0, 10), (5, 15)) == pytest.approx(1 / 3)


@pytest.mark.parametrize("gold,metadata", [
    ([7, 3.5], {}), ([3, 3], {}), ([-1, 3], {}), ([1, 2, 3], {}), ("soon", {}),
    ([True, 3], {}), (None, {}), ([float("nan"), 3], {}), (GOLD, {"iou_threshold": "0.5"}),
])
def test_bad_sample_raises(gold, metadata):
    with pytest.raises(ValueError):
        temporal_iou_reward("[3.5, 7]", S(gold, **metadata))


@pytest.mark.parametrize("name", sorted(ADVERSARIAL) + ["ranges", "colons"])
def test_hostile_completions(name):
    text = ADVERSARIAL.get(name) or {"ranges": "1 - " * 30_000, "colons": "1:" * 50_000}[name]
    t0 = time.perf_counter()
    assert temporal_iou_reward(text, S()) == 0.0
    assert time.perf_counter() - t0 < HANG_GUARD_S
