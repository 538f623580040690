import pytest

from mmrft.rewards import choice_reward

OPTS = ["cat", "dog", "bird", "fish"]
NUM_OPTS = ["12", "1", "2", "21"]


def S(answer, options=None):
    return {"id": "c", "answer": answer, "metadata": {"options": options} if options is not None else {}}


CHOICE_ROWS = [
    # (gold, completion, options, expected)
    ("B", "B", None, 1.0),
    ("B", "(B)", None, 1.0),
    ("B", "B.", None, 1.0),
    ("B", "B)", None, 1.0),
    ("B", "b", None, 1.0),
    ("B", "**B**", None, 1.0),
    ("B", "Answer: B", None, 1.0),
    ("B", "The answer is (B) because the dog is bigger.", None, 1.0),
    ("B", "<think>A is wrong, C too</think><answer>B</answer>", None, 1.0),
    ("B", "\\boxed{B}", None, 1.0),
    ("B", "\\boxed{\\text{(B)}}", None, 1.0),
    ("B", "I think it is B", None, 1.0),
    ("B", "The correct option is B.", None, 1.0),
    ("B", "B. dog", OPTS, 1.0),
    ("B", "dog", OPTS, 1.0),
    ("B", "<answer>Dog</answer>", OPTS, 1.0),
    ("B", "The answer is the dog.", OPTS, 1.0),
    ("B", "(B) dog", {"A": "cat", "B": "dog", "C": "bird"}, 1.0),
    ("B", "1", NUM_OPTS, 1.0),  # "1" must not match inside "12" or "21"
    ("A", "12", NUM_OPTS, 1.0),
    ("(b)", "B", None, 1.0),  # gold written with decoration
    ("dog", "B", OPTS, 1.0),  # gold given as option text
    ("A", "A", None, 1.0),
    ("A", "a", None, 1.0),
    ("B", "A", None, 0.0),
    ("B", "C) bird", OPTS, 0.0),
    ("B", "A or C", None, 0.0),
    ("B", "A and B", None, 0.0),  # two letters named
    ("B", "B or C", None, 0.0),
    ("B", "(A) and (B)", None, 0.0),
    ("B", "It's the dog, not the cat", OPTS, 0.0),  # two options named
    ("B", "B. cat", OPTS, 0.0),  # letter and text disagree
    ("B", "elephant", OPTS, 0.0),
    ("B", "E", OPTS, 0.0),  # not an option
    ("B", "<think>It is probably (B", None, 0.0),  # truncated
    ("B", "I don't know", None, 0.0),
    ("B", "", None, 0.0),
    ("B", None, None, 0.0),
    ("B", "ABCD" * 25_000, None, 0.0),
]


@pytest.mark.parametrize("gold,completion,options,expected", CHOICE_ROWS)
def test_choice(gold, completion, options, expected):
    assert choice_reward(completion, S(gold, options)) == expected


@pytest.mark.parametrize(
    "gold,options",
    [(None, None), ("", None), ("dog", None), ("E", OPTS), ("lizard", OPTS), ("B", "cat,dog"), ("B", {"AB": "x"})],
)
def test_choice_bad_gold_raises(gold, options):
    with pytest.raises(ValueError):
        choice_reward("B", S(gold, options))


def test_options_with_own_letter_prefix():
    opts = ["A. cat", "B. dog", "C. bird"]
    assert choice_reward("dog", S("B", opts)) == 1.0
    assert choice_reward("(C) bird", S("C", opts)) == 1.0
