import pytest

from mmrft.rewards import answer_format_reward, format_reward, get_reward, make_format_reward

FORMAT_ROWS = [
    ("<think>count them</think><answer>3</answer>", 1.0),
    ("\n  <think>\nI see 3.\n</think>\n\n<answer>\n3\n</answer>\n", 1.0),
    ("<think></think><answer>5</answer>", 1.0),
    ("<think>a</think>   <answer>The answer is (B).</answer>", 1.0),
    ("<answer>3</answer>", 0.0),  # no think
    ("Sure! <think>x</think><answer>3</answer>", 0.0),  # chatty prefix
    ("<think>x</think><answer>3</answer> Hope this helps!", 0.0),  # trailing text
    ("<think>x</think> so <answer>3</answer>", 0.0),  # text between
    ("<think>x</think><answer>3</answer><answer>4</answer>", 0.0),  # two answers
    ("<think>x</think><think>y</think><answer>3</answer>", 0.0),  # two thinks
    ("<think>x<answer>3</answer></think>", 0.0),  # answer nested in think
    ("<answer>3</answer><think>x</think>", 0.0),  # wrong order
    ("<think>I count the circ", 0.0),  # truncated
    ("<think>x</think><answer>3", 0.0),  # unclosed answer
    ("<think>x</think><answer>  </answer>", 0.0),  # empty answer
    ("<THINK>x</THINK><ANSWER>3</ANSWER>", 0.0),  # tags are case-sensitive
    ("<think>x</answer><answer>3</think>", 0.0),  # scrambled
    ("", 0.0),
    (None, 0.0),
]


@pytest.mark.parametrize("completion,expected", FORMAT_ROWS)
def test_format(completion, expected):
    assert format_reward(completion, {"answer": "3", "metadata": {}}) == expected


ANSWER_FORMAT_ROWS = [
    ("<answer>3</answer>", 1.0),
    ("Let me see... <answer> B </answer> done", 1.0),
    ("<think>x</think><answer>3</answer>", 1.0),
    ("<answer>3</answer><answer>4</answer>", 0.0),
    ("</answer>3<answer>", 0.0),
    ("<answer></answer>", 0.0),
    ("<answer>3", 0.0),
    ("The answer is 3.", 0.0),
]


@pytest.mark.parametrize("completion,expected", ANSWER_FORMAT_ROWS)
def test_answer_format(completion, expected):
    assert answer_format_reward(completion, {"answer": "3", "metadata": {}}) == expected


def test_custom_tags():
    fn = make_format_reward(think_tag="reasoning", answer_tag="output")
    assert fn("<reasoning>r</reasoning>\n<output>o</output>", {}) == 1.0
    assert fn("<think>r</think><answer>o</answer>", {}) == 0.0


@pytest.mark.parametrize("bad", ["", "a b", "<think>", "x/y"])
def test_bad_tag_names(bad):
    with pytest.raises(ValueError):
        make_format_reward(think_tag=bad)


def test_registered():
    assert get_reward("format") is format_reward
    assert get_reward("answer_format") is answer_format_reward
