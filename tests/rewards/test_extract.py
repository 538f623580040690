import random
import time

import pytest

from mmrft.rewards.extract import extract_answer
from tests.rewards.hang_guard import HANG_GUARD_S

EXTRACT_ROWS = [
    # 1. answer tags win
    ("<think>x</think><answer>42</answer>", "42"),
    ("<think>x</think>\n<answer> 42. </answer>\n", "42"),
    ("<answer>1</answer> wait, let me redo it. <answer>2</answer>", "2"),
    ("<ANSWER>7</ANSWER>", "7"),
    ("<think>...</think><answer>\\boxed{5}</answer>", "5"),
    ("<answer>The answer is 12</answer>", "The answer is 12"),
    ("<think>ok</think><answer>42", "42"),  # engine stopped on "</answer>" and stripped it
    ("<answer>3</answer> and then <answer>", "3"),  # truncated right after a new open tag
    ("<answer></answer>", None),
    ("<think>so 5</think><answer>   </answer>\nThe answer is 5", None),
    ("The answer is 3 <answer>\\boxed{1}, \\boxed{2}</answer>", "2"),
    # 2./3. boxed (after </think>)
    ("So the result is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
    ("\\boxed{1} at first, but finally \\boxed{2}", "2"),
    ("\\fbox{7}", "7"),
    ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
    ("thus \\boxed 5", "5"),
    ("\\boxed{3} and then \\boxed{4", "3"),
    ("The final answer is $\\boxed{6}$. I hope it is correct.", "6"),
    ("\\boxed{x^{2}+\\frac{a}{b}}", "x^{2}+\\frac{a}{b}"),
    ("<think>maybe \\boxed{5}</think>\n6", "6"),
    ("<think>The answer is 5</think>The answer is 6", "6"),
    # 4. answer phrase
    ("The answer is 42.", "42"),
    ("Therefore, the answer is: (B). Because B is larger.", "(B)"),
    ("**Answer:** 17", "17"),
    ("Final Answer:\n\n  9 \n", "9"),
    ("answer = 3.5", "3.5"),
    ("Let me think. The answer is 8 apples.\nDone", "8 apples"),
    ("The final answer is $\\frac{3}{4}$. I hope it is correct.", "$\\frac{3}{4}$"),
    # 5. last line
    ("Step 1: ...\nStep 2: ...\n42", "42"),
    ("Line one\n\nthe count is 7.\n\n\n", "the count is 7"),
    ("There are three.", "There are three"),
    # nothing usable
    ("<think>I count the circ", None),
    ("<think>a</think>", None),
    ("", None),
    ("   \n  \t", None),
    ("...", None),
    (None, None),
]


@pytest.mark.parametrize("text,expected", EXTRACT_ROWS)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def _adversarial():
    rng = random.Random(0)
    pieces = ["{", "}", "\\boxed{", "\\fbox", "<answer>", "</answer>", "<think>", "</think>", "answer is ", ": ", "\n", "$", "(", "1", "e9", " "]
    soup = "".join(rng.choice(pieces) for _ in range(20000))[:100_000]
    return {
        "junk_100k": "x" * 100_000,
        "junk_100k_lines": "ab cd\n" * 17_000,
        "nested_10k_closed": "\\boxed{" + "{" * 10_000 + "7" + "}" * 10_000 + "}",
        "nested_10k_open": "\\boxed{" + "{" * 10_000 + "7",
        "boxed_10k_unclosed": "\\boxed{" * 10_000,
        "tags_20k": "<answer>" * 10_000 + "</answer>" * 10_000,
        "think_open_20k": "<think>" * 20_000,
        "phrase_10k": "the answer is " * 10_000,
        "spaces_100k": "answer:" + " " * 100_000 + "x",
        "digits_100k": "1" * 100_000,
        "soup_100k": soup,
    }


ADVERSARIAL = _adversarial()


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_extract_is_fast_on_adversarial_inputs(name):
    t0 = time.perf_counter()
    extract_answer(ADVERSARIAL[name])
    assert time.perf_counter() - t0 < HANG_GUARD_S


def test_nested_braces_are_matched():
    assert extract_answer(ADVERSARIAL["nested_10k_closed"]) == "{" * 10_000 + "7" + "}" * 10_000
