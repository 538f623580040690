import time

import pytest

from mmrft.rewards import (
    build_reward,
    get_reward,
    length_penalty,
    make_length_penalty,
    make_repetition_penalty,
    repetition_penalty,
)
from mmrft.rewards.shaping import DEFAULT_MAX_CHARS

from tests.rewards.test_extract import ADVERSARIAL
from tests.rewards.hang_guard import HANG_GUARD_S


def S(**metadata):
    return {"id": "p", "answer": "3", "metadata": metadata}


REASONING = (
    "<think>The image shows three red circles and two blue squares. "
    "Counting only the circles gives three.</think><answer>3</answer>"
)

LENGTH_ROWS = [
    # (completion, metadata, expected)
    (REASONING, {}, 0.0),
    ("", {}, 0.0),
    (None, {}, 0.0),
    ("x" * DEFAULT_MAX_CHARS, {}, 0.0),
    ("x" * (DEFAULT_MAX_CHARS + 1), {}, pytest.approx(-1 / DEFAULT_MAX_CHARS)),
    ("x" * (DEFAULT_MAX_CHARS * 3 // 2), {}, pytest.approx(-0.5)),
    ("x" * (2 * DEFAULT_MAX_CHARS), {}, -1.0),
    ("x" * (5 * DEFAULT_MAX_CHARS), {}, -1.0),  # clamped
    ("x" * 100, {"max_chars": 100}, 0.0),
    ("x" * 150, {"max_chars": 100}, pytest.approx(-0.5)),
    ("x" * 110, {"max_chars": 100, "length_ramp_chars": 20}, pytest.approx(-0.5)),
    ("x" * 130, {"max_chars": 100, "length_ramp_chars": 20}, -1.0),
    (REASONING, {"max_chars": 100}, pytest.approx(-(len(REASONING) - 100) / 100)),
    ("<think>" + "Let me recount. " * 500 + "</think><answer>3</answer>", {"max_chars": 1000}, -1.0),
    ("<think>" + "Let me recount. " * 500, {"max_chars": 1000}, -1.0),  # truncated rambling
]


@pytest.mark.parametrize("completion,metadata,expected", LENGTH_ROWS)
def test_length_penalty(completion, metadata, expected):
    assert length_penalty(completion, S(**metadata)) == expected


def test_make_length_penalty():
    short = make_length_penalty(10, ramp_chars=10)
    assert short("x" * 10, {}) == 0.0
    assert short("x" * 15, {}) == pytest.approx(-0.5)
    assert short("x" * 25, {}) == -1.0
    assert short("x" * 15, S(max_chars=20)) == 0.0  # metadata overrides
    assert make_length_penalty(10)("x" * 15, {}) == pytest.approx(-0.5)  # ramp defaults to max_chars


REPETITION_ROWS = [
    # (completion, metadata, expected)
    (REASONING, {}, 0.0),
    ("The answer is 3.", {}, 0.0),
    ("one two three", {}, 0.0),  # fewer tokens than n
    ("", {}, 0.0),
    (None, {}, 0.0),
    ("a b c d a b c d", {}, pytest.approx(-1 / 5)),  # 5 4-grams, 4 distinct
    ("a b c d e a b c d e", {}, pytest.approx(-2 / 7)),  # abcd and bcde come back
    ("A B C D a b c d", {}, pytest.approx(-1 / 5)),  # case-insensitive
    ("I think so. " * 50, {}, pytest.approx(-(197 - 4) / 197)),
    ("<think>" + "Wait, let me check again. " * 40 + "</think><answer>3</answer>", {}, pytest.approx(-0.9, abs=0.05)),
    ("a a a a a a", {}, pytest.approx(-2 / 3)),
    ("a a a a a a", {"repetition_ngram": 1}, pytest.approx(-5 / 6)),
    ("a b a b", {"repetition_ngram": 2}, pytest.approx(-1 / 3)),
    ("the cat sat on the mat", {"repetition_ngram": 1}, pytest.approx(-1 / 6)),
    ("the cat sat on the mat", {"repetition_ngram": 2}, 0.0),
]


@pytest.mark.parametrize("completion,metadata,expected", REPETITION_ROWS)
def test_repetition_penalty(completion, metadata, expected):
    assert repetition_penalty(completion, S(**metadata)) == expected


def test_make_repetition_penalty():
    bigram = make_repetition_penalty(2)
    assert bigram("a b a b", {}) == pytest.approx(-1 / 3)
    assert bigram("a b a b", S(repetition_ngram=4)) == 0.0


@pytest.mark.parametrize(
    "fn,metadata",
    [
        (length_penalty, {"max_chars": 0}),
        (length_penalty, {"max_chars": "100"}),
        (length_penalty, {"max_chars": 1.5}),
        (length_penalty, {"length_ramp_chars": -5}),
        (repetition_penalty, {"repetition_ngram": 0}),
        (repetition_penalty, {"repetition_ngram": True}),
    ],
)
def test_bad_settings_raise(fn, metadata):
    with pytest.raises(ValueError):
        fn("text", S(**metadata))


def test_bad_factory_arguments():
    for bad in (0, -1, "10", None):
        with pytest.raises(ValueError):
            make_length_penalty(bad)
    with pytest.raises(ValueError):
        make_repetition_penalty(0)


def test_registered_and_composable():
    assert get_reward("length_penalty") is length_penalty
    assert get_reward("repetition_penalty") is repetition_penalty
    total, parts = build_reward({"count": 1.0, "repetition_penalty": 0.5})("3 3 3 3 3", {"answer": 3, "metadata": {}})
    assert parts == {"count": 1.0, "repetition_penalty": pytest.approx(-0.5)}
    assert total == pytest.approx(0.75)


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_hostile_completions_stay_in_range(name):
    t0 = time.perf_counter()
    for fn in (length_penalty, repetition_penalty):
        assert -1.0 <= fn(ADVERSARIAL[name], S()) <= 0.0
    assert time.perf_counter() - t0 < HANG_GUARD_S
