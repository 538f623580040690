import pytest

from mmrft.rewards import count_reward, exact_reward, numeric_reward
from mmrft.rewards.numeric import parse_count, parse_number


def S(answer, **metadata):
    return {"id": "s", "answer": answer, "metadata": metadata}


NUMERIC_ROWS = [
    # (gold, completion, expected)
    (42, "The answer is 42.", 1.0),
    (42, "<think>6*7</think><answer>42</answer>", 1.0),
    ("42", "Therefore, the total is \\boxed{42}.", 1.0),
    (0.5, "\\boxed{\\frac{1}{2}}", 1.0),
    (0.5, "<answer>1/2</answer>", 1.0),
    (0.75, "The answer is \\dfrac{3}{4}", 1.0),
    (1234, "The total is $1,234.", 1.0),
    ("1,234,567", "1234567", 1.0),
    (1234, "1{,}234", 1.0),
    (1200, "<answer>1.2e3</answer>", 1.0),
    ("1.2e3", "1200", 1.0),
    (1200, "\\boxed{1.2 \\times 10^{3}}", 1.0),
    (12.5, "The area is 12.5 cm^2.", 1.0),
    (12, "12 cm²", 1.0),
    (30, "Answer: 30 km/h", 1.0),
    (9.99, "It costs $9.99", 1.0),
    (100, "\\$100", 1.0),
    (-3, "The answer is −3", 1.0),
    (-3, "x = -3", 1.0),
    (7, "3 + 4 = 7", 1.0),
    (5, "x = 5 (rounded to 2 decimal places)", 1.0),
    (3.14159, "3.1416", 1.0),  # within rel_tol 1e-4
    (3.14159, "3.14", 0.0),
    ("45%", "45%", 1.0),
    ("45%", "45", 1.0),
    ("45%", "0.45", 1.0),
    (0.45, "45\\%", 1.0),
    (0.45, "45 percent", 1.0),
    (45, "45%", 1.0),
    (45, "0.45", 0.0),
    (2, "two", 1.0),
    (0.0, "0", 1.0),
    (1e-9, "0", 1.0),  # abs_tol 1e-8
    (42, "The answer is 43.", 0.0),
    (42, "I don't know", 0.0),
    (42, "<think>6*7 is 42, so", 0.0),  # truncated reasoning
    (42, "4.2", 0.0),
    (5, "1e99999999", 0.0),
    (5, "-1e99999999", 0.0),
    (5, "1" * 5000, 0.0),
    (5, "5/0", 0.0),
    (5, "", 0.0),
    (5, None, 0.0),
]


@pytest.mark.parametrize("gold,completion,expected", NUMERIC_ROWS)
def test_numeric(gold, completion, expected):
    assert numeric_reward(completion, S(gold)) == expected


def test_numeric_tolerance_from_metadata():
    assert numeric_reward("3.14", S(3.14159, rel_tol=1e-2)) == 1.0
    assert numeric_reward("10.4", S(10, abs_tol=0.5, rel_tol=0)) == 1.0
    assert numeric_reward("10.6", S(10, abs_tol=0.5, rel_tol=0)) == 0.0
    with pytest.raises(ValueError):
        numeric_reward("1", S(1, rel_tol="big"))


@pytest.mark.parametrize("gold", [None, True, [1, 2], "no digits here", float("nan")])
def test_numeric_bad_gold_raises(gold):
    with pytest.raises(ValueError):
        numeric_reward("1", S(gold))


def test_parse_number_percent_gives_two_candidates():
    assert parse_number("45%") == (45.0, 0.45)
    assert parse_number("no number") is None


EXACT_ROWS = [
    ("Paris", "The answer is Paris.", 1.0),
    ("paris", '<answer>"Paris"</answer>', 1.0),
    ("New York", "<answer>new   york</answer>", 1.0),
    ("x+1", "\\boxed{x+1}", 1.0),
    ("$5$", "5", 1.0),
    ("5", "$5$", 1.0),
    ("red", "`red`", 1.0),
    (12, "12", 1.0),
    (12.0, "12", 1.0),
    ("Paris", "The answer is Paris, France.", 0.0),
    ("Paris", "London", 0.0),
    ("red", "reddish", 0.0),
    ("red", "<think>it is red", 0.0),
    ("red", None, 0.0),
]


@pytest.mark.parametrize("gold,completion,expected", EXACT_ROWS)
def test_exact(gold, completion, expected):
    assert exact_reward(completion, S(gold)) == expected


@pytest.mark.parametrize("gold", [None, ["a"], "   ", True])
def test_exact_bad_gold_raises(gold):
    with pytest.raises(ValueError):
        exact_reward("a", S(gold))


COUNT_ROWS = [
    (3, "3", 1.0),
    (3, "3 circles", 1.0),
    (3, "There are three.", 1.0),
    (3, "<think>one, two, three</think><answer>3</answer>", 1.0),
    (3, "I can see 2 red and 1 blue circle, so there are 3 circles in total.", 1.0),
    (3, "The answer is \\boxed{3}", 1.0),
    (3, "Three", 1.0),
    (3, "3.0", 1.0),
    ("3", "three objects", 1.0),
    ("three", "3", 1.0),
    (0, "There are no red cubes.", 1.0),
    (0, "zero", 1.0),
    (12, "<answer>twelve</answer>", 1.0),
    (20, "twenty", 1.0),
    (21, "twenty-one", 1.0),
    (1000, "1,000 dots", 1.0),
    (3, "4 circles", 0.0),
    (3, "3.5", 0.0),
    (3, "There are three circles, one of which is red.", 0.0),  # last mention wins: 1
    (3, "<think>I count the circ", 0.0),
    (3, "I cannot tell.", 0.0),
    (3, "3rd", 0.0),
    (3, "", 0.0),
    (3, "1" * 100_000, 0.0),
    (1, "No, there is 1.", 1.0),
]


@pytest.mark.parametrize("gold,completion,expected", COUNT_ROWS)
def test_count(gold, completion, expected):
    assert count_reward(completion, S(gold)) == expected


@pytest.mark.parametrize("gold", [2.5, "many", None, True, [3]])
def test_count_bad_gold_raises(gold):
    with pytest.raises(ValueError):
        count_reward("3", S(gold))


def test_parse_count():
    assert parse_count("There are 7 apples and nineteen pears") == 19
    assert parse_count("none") == 0
    assert parse_count("nothing to count here? maybe") == 0
    assert parse_count("hmm") is None
