import time

import pytest

from mmrft.rewards import chart_reward, get_reward
from mmrft.rewards.chart import relaxed_match

from tests.rewards.test_extract import ADVERSARIAL
from tests.rewards.hang_guard import HANG_GUARD_S


def S(answer, **metadata):
    return {"id": "c", "answer": answer, "metadata": metadata}


CHART_ROWS = [
    # (gold, completion, expected)
    # --- numbers: 5% relative tolerance
    (45, "45", 1.0),
    (45, "The answer is 46.", 1.0),  # 2.2% off
    (45, "<think>The bar for 2019 reaches about 47.</think><answer>47</answer>", 1.0),  # 4.4% off
    (45, "<answer>42.75</answer>", 1.0),  # exactly 5% below
    (45, "<answer>42.7</answer>", 0.0),  # 5.1% below
    (45, "48", 0.0),  # 6.7% off
    (45, "Looking at the chart, the value is approximately 44.5 million.", 1.0),
    (45, "\\boxed{45}", 1.0),
    ("45", "forty-five", 0.0),  # words beyond twenty are not read
    ("12", "twelve", 1.0),
    (1234, "1,234", 1.0),
    ("1,234", "The total is 1200 units.", 1.0),  # 2.8% off
    ("$12.5", "12.5", 1.0),
    (12.5, "$12.50", 1.0),
    (0.57, "0.57", 1.0),
    (0.57, "0.6", 0.0),  # 5.3% off
    (-3.2, "-3.1", 1.0),
    (-3.2, "3.2", 0.0),
    (-3.2, "\u22123.2", 1.0),
    (0, "0", 1.0),
    (0, "0.0", 1.0),
    (0, "0.01", 0.0),  # gold 0 needs exactly 0
    (0, "zero", 1.0),
    (2019, "2020", 1.0),  # ChartQA quirk: years get the tolerance too
    (2019, "The peak was in 1900.", 0.0),
    ("3/4", "0.75", 0.0),  # a fraction gold string is text
    ("3/4", "3/4", 1.0),
    # --- percentages, as in `numeric`
    ("45%", "45%", 1.0),
    ("45%", "45", 1.0),
    ("45%", "0.45", 1.0),
    ("45%", "The share is 46 percent.", 1.0),
    (45, "45%", 1.0),
    (0.45, "45%", 1.0),
    (0.45, "45\\%", 1.0),
    (0.45, "45", 0.0),
    ("45%", "60%", 0.0),
    # --- text answers: exact after normalisation
    ("Democrats", "democrats", 1.0),
    ("Democrats", "The answer is Democrats.", 1.0),
    ("Democrats", "<answer> DEMOCRATS </answer>", 1.0),
    ("Democrats", "Republicans", 0.0),
    ("Democrats", "The Democrats", 0.0),
    ("Yes", "yes", 1.0),
    ("Yes", "Yes, it is increasing.", 0.0),
    ("Yes", "No", 0.0),
    ("United States", "united   states", 1.0),
    ("United States", "USA", 0.0),
    ("2015-2016", "2015-2016", 1.0),  # a range gold is text
    ("2015-2016", "2016", 0.0),
    ("Q3", "q3", 1.0),
    ("Q3", "Q4", 0.0),
    (["Dark Blue", "Navy"], "navy", 1.0),  # any of several acceptable answers
    (["Dark Blue", 12], "12.3", 1.0),
    (["Dark Blue", "Navy"], "Light Blue", 0.0),
    # --- no answer / junk
    (45, "<think>Let me read the y-axis: 45, 50, 55", 0.0),
    (45, "I cannot determine the value from the chart.", 0.0),
    (45, "", 0.0),
    (45, None, 0.0),
    (45, "1e99999999", 0.0),
    ("Democrats", "<answer></answer>", 0.0),
]


@pytest.mark.parametrize("gold,completion,expected", CHART_ROWS)
def test_chart(gold, completion, expected):
    assert chart_reward(completion, S(gold)) == expected


def test_rel_tol_from_metadata():
    assert chart_reward("48", S(45, rel_tol=0.1)) == 1.0
    assert chart_reward("45.1", S(45, rel_tol=0)) == 0.0
    with pytest.raises(ValueError):
        chart_reward("45", S(45, rel_tol="5%"))


def test_registered():
    assert get_reward("chart") is chart_reward
    assert relaxed_match("46", (45.0,))


@pytest.mark.parametrize("gold", [None, True, "", "   ", float("nan"), {"v": 1}, [], ["ok", None]])
def test_bad_gold_raises(gold):
    with pytest.raises(ValueError):
        chart_reward("1", S(gold))


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_hostile_completions(name):
    t0 = time.perf_counter()
    assert chart_reward(ADVERSARIAL[name], S(17)) == 0.0
    assert chart_reward(ADVERSARIAL[name], S("Democrats")) == 0.0
    assert time.perf_counter() - t0 < HANG_GUARD_S
