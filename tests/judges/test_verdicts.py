"""Verdict parsers against tables of judge replies as real judges write them (chatty, markdown, thinking, JSON in
fences), and garbage; errors quote the reply; options are checked when the parser is made."""

from __future__ import annotations

import math

import pytest

from mmrft.judges.verdicts import VERDICTS, VerdictError, json_field, make_verdict, scale, strip_reasoning, yes_no

ERR = VerdictError

YES_NO = [
    ("Yes", 1.0),
    ("no", 0.0),
    ("Yes.", 1.0),
    ("NO.", 0.0),
    ("**Yes**", 1.0),
    ("**No**\n", 0.0),
    ("Answer: Yes", 1.0),
    ("Verdict: no", 0.0),
    ("  yes  \n", 1.0),
    ('"Yes"', 1.0),
    ("Yes, the final answer 12 matches the reference answer 12.", 1.0),
    ("The response says 7 but the reference is 9, so the answer is no.", 0.0),
    ("<think>The reference says 4. The response says four, which is the same. So no difference... yes.</think>\nYes",
     1.0),
    ("<think>Hmm, is it yes? The values differ.</think>\n\n**No**", 0.0),
    ("reasoning the prompt opened the tag for</think>No", 0.0),  # Qwen3-style: "<think>" was in the prompt
    ("No. On reflection, the reference answer is also 3, so yes", 1.0),  # the last word wins (documented)
    ("- Equivalent: yes", 1.0),
    ("Final Answer: NO", 0.0),
    # errors: neither word, both as alternatives, cut off while thinking, look-alike words, empty, garbage
    ("", ERR),
    ("\n\n\n\n", ERR),
    ("I cannot determine this.", ERR),
    ("yes or no", ERR),
    ("Yes/No", ERR),
    ("No. Yes.", ERR),
    ("<think>I think the answer is yes", ERR),
    ("yesterday nobody knew", ERR),
    ("no-one can tell; yes-man", ERR),
    ("visivisivisivisivisivisi", ERR),
    ("\u00ef\u00bf\u00bd\u00ef\u00bf\u00bd", ERR),
]

SCALE = [  # default scale 1..10 -> (x - 1) / 9
    ("Score: 7", 6 / 9),
    ("score: 10", 1.0),
    ("Score: 1", 0.0),
    ("**Score:** 8", 7 / 9),
    ("The response follows most of the rubric but misses the units.\nScore: 6", 5 / 9),
    ("Score = 9/10", 8 / 9),
    ("Rating: 5", 4 / 9),
    ("7", 6 / 9),
    ("**8**", 7 / 9),
    ("8/10.", 7 / 9),
    ("Score: 7.5", 6.5 / 9),
    ("<think>First I thought Score: 2, but the response is better.</think>Score: 9", 8 / 9),
    ("I initially said Score: 3. Revised score: 4", 3 / 9),  # the last labelled score wins
    # errors
    ("Score: 11", ERR),
    ("Score: 0", ERR),
    ("Score: -3", ERR),
    ("Score: 4/5", ERR),  # out of 5, not 10
    ("It is between 6 and 8.", ERR),  # two numbers, no label
    ("Excellent response!", ERR),
    ("", ERR),
    ("Score: N", ERR),
    ("<think>Score: 7", ERR),
]

JSON = [
    ('{"score": 0.8}', 0.8),
    ('{"score": 1}', 1.0),
    ('{"score": 0}', 0.0),
    ('```json\n{"score": 0.25, "reason": "partly right"}\n```', 0.25),
    ('```\n{"score": 0.5}\n```', 0.5),
    ('Here is my grade: {"reason": "the value matches", "score": 0.9}. Thanks!', 0.9),
    ('{"score": "0.75"}', 0.75),
    ('<think>{"score": 0.1} would be too harsh</think>{"score": 0.6}', 0.6),
    ('The set {1, 2} is wrong. {"score": 0.3}', 0.3),  # a non-JSON brace first
    ('{\n  "score": 0.45\n}', 0.45),
    ('```json\n{"score": 0.2}\n```\nAlso {"score": 0.9}', 0.2),  # the fenced block first
    # errors
    ('{"score": 1.5}', ERR),
    ('{"score": -0.1}', ERR),
    ('{"score": true}', ERR),
    ('{"score": null}', ERR),
    ('{"score": "high"}', ERR),
    ('{"grade": 0.5}', ERR),
    ('{"score": NaN}', ERR),
    ("score: 0.5", ERR),
    ("```json\n{'score': 0.5}\n```", ERR),  # not JSON (single quotes), and never evaluated
    ("[0.5]", ERR),
    ("", ERR),
]


def check(fn, reply, expected, **options):
    if expected is ERR:
        with pytest.raises(VerdictError) as info:
            fn(reply, **options)
        assert repr(reply) in str(info.value), f"the error does not quote the reply: {info.value}"
    else:
        assert fn(reply, **options) == pytest.approx(expected)


@pytest.mark.parametrize("reply,expected", YES_NO)
def test_yes_no(reply, expected):
    check(yes_no, reply, expected)


@pytest.mark.parametrize("reply,expected", SCALE)
def test_scale(reply, expected):
    check(scale, reply, expected)


@pytest.mark.parametrize("reply,expected", JSON)
def test_json_field(reply, expected):
    check(json_field, reply, expected)


def test_scale_options():
    assert scale("Score: 3", low=1, high=5) == pytest.approx(0.5)
    assert scale("Score: 0", low=0, high=4) == 0.0
    assert scale("4/5", low=1, high=5) == pytest.approx(0.75)
    with pytest.raises(VerdictError, match="outside the scale 1..5"):
        scale("Score: 7", low=1, high=5)


def test_json_field_options():
    assert json_field('{"verdict": {"correct": 7}}', field="verdict.correct", low=0, high=10) == pytest.approx(0.7)
    assert json_field('{"rating": 4}', field="rating", low=1, high=5) == pytest.approx(0.75)
    with pytest.raises(VerdictError, match="no field 'verdict.correct'"):
        json_field('{"verdict": 1}', field="verdict.correct")


def test_long_replies_are_quoted_truncated():
    reply = "maybe " * 200
    with pytest.raises(VerdictError) as info:
        yes_no(reply)
    message = str(info.value)
    assert "maybe maybe" in message and "(1200 characters)" in message and len(message) < 400


def test_strip_reasoning():
    assert strip_reasoning("<think>a</think>b") == "b"
    assert strip_reasoning("<think>a</think>b<think>c</think>d") == "d"
    assert strip_reasoning("a</think>b") == "b"
    assert strip_reasoning("b<think>unfinished") == "b"
    assert strip_reasoning("plain") == "plain"


def test_registry_and_make_verdict():
    assert {"yes_no", "scale", "json_field"} <= set(VERDICTS)
    assert make_verdict("scale", {"low": 1, "high": 5})("Score: 5") == 1.0
    assert make_verdict("yes_no")("yes") == 1.0
    with pytest.raises(KeyError, match="unknown verdict parser 'maybe'.*yes_no"):
        make_verdict("maybe")
    with pytest.raises(TypeError, match=r"judge 'j'.*'yes_no' does not take option\(s\) strict.*no options"):
        make_verdict("yes_no", {"strict": True}, judge="j")
    with pytest.raises(TypeError, match=r"'scale' does not take option\(s\) hi; it takes: low, high"):
        make_verdict("scale", {"hi": 5}, judge="j")
    with pytest.raises(ValueError, match="low < high"):
        make_verdict("scale", {"low": 5, "high": 5}, judge="j")
    with pytest.raises(ValueError, match="field"):
        make_verdict("json_field", {"field": ""}, judge="j")


def length_verdict(reply_text: str, scale: float = 10.0) -> float:
    """A user parser for the import-path test."""
    return min(1.0, len(reply_text) / scale)


def test_user_parser_by_import_path():
    fn = make_verdict("tests.judges.test_verdicts:length_verdict", {"scale": 4})
    assert fn("ab") == 0.5
    assert not math.isnan(fn(""))
