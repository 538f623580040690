import random
import time

import pytest

from mmrft.rewards import get_reward, ocr_reward
from mmrft.rewards.ocr import _lev_numpy, _lev_python, anls, levenshtein

from tests.rewards.test_extract import ADVERSARIAL
from tests.rewards.hang_guard import HANG_GUARD_S


def S(answer, **metadata):
    return {"id": "o", "answer": answer, "metadata": metadata}


ADDRESS = "ACME Corp\n123 Main St\nSpringfield"

OCR_ROWS = [
    # (gold, completion, expected)
    ("STOP", "STOP", 1.0),
    ("STOP", "The sign says: stop", 0.0),  # last line is the whole sentence
    ("STOP", "The answer is stop.", 1.0),
    ("STOP", "<think>Red octagon, white letters.</think><answer>Stop</answer>", 1.0),
    ("STOP", "<answer>\\boxed{STOP}</answer>", 1.0),
    ("STOP", "**Answer:** STOP", 1.0),
    ("Coca-Cola", "coca-cola", 1.0),
    ("Coca-Cola", "Coca Cola", pytest.approx(1 - 1 / 9)),
    ("Coca-Cola", "CocaCola", pytest.approx(1 - 1 / 9)),
    ("Hello World", "hello   world", 1.0),
    ("Hello World", " Hello\tWorld. ", 1.0),
    ("hello world", "helo world", pytest.approx(1 - 1 / 11)),
    ("hello world", "hello wrld!", pytest.approx(1 - 2 / 11)),
    ("$12.50", "The total is $12.50", 0.0),  # a sentence, not the answer
    ("$12.50", "The answer is $12.50", 1.0),
    ("$12.50", "12.50", pytest.approx(1 - 1 / 6)),
    ("12/03/2021", "12/03/2021", 1.0),
    ("12/03/2021", "12-03-2021", pytest.approx(0.8)),
    ("abcd", "abxy", 0.5),  # similarity exactly 0.5 is kept
    ("abcd", "axyz", 0.0),  # 0.25 < 0.5
    ("abcd", "abcdef", pytest.approx(4 / 6)),
    ("abcd", "abcdefgh", 0.5),  # twice as long: 0.5
    ("abcd", "abcdefghi", 0.0),  # more than twice as long
    ("Main Street", "Main St.", pytest.approx(1 - 4 / 11)),  # 4 deletions over 11 characters: 0.64 kept
    ("Main Street", "Main Stret", pytest.approx(1 - 1 / 11)),
    ("Main Street", "Elm Avenue", 0.0),
    (["Main Street", "Main St"], "Main St.", 1.0),  # any acceptable answer, max
    (["Main Street", "Main St"], "main stree", pytest.approx(1 - 1 / 11)),
    (["Main Street", "Main St"], "Broadway", 0.0),
    ("ÉCOLE", "école", 1.0),
    ("東京", "東京", 1.0),
    ("東京", "京都", 0.0),
    ("100", "100", 1.0),
    ("100", "1000", pytest.approx(0.75)),
    ("100", "10", pytest.approx(2 / 3)),
    ("100", "1", 0.0),
    ("OPEN 24 HOURS", "<answer>OPEN 24 HOURS</answer>", 1.0),
    ("OPEN 24 HOURS", "<think>the sign is partially hidden</think>\nOPEN 24 HOUR", pytest.approx(1 - 1 / 13)),
    ("OPEN 24 HOURS", "<think>the sign says OPEN 24 HOURS", 0.0),  # truncated inside think
    ("OPEN 24 HOURS", "<answer></answer>", 0.0),
    ("OPEN 24 HOURS", "I cannot read the text in this image.", 0.0),
    ("OPEN 24 HOURS", "", 0.0),
    ("OPEN 24 HOURS", None, 0.0),
    ("OPEN 24 HOURS", "OPEN 24 HOURS " * 200, 0.0),  # runaway repetition
    # multi-line transcription: the whole answer block / post-think text counts
    (ADDRESS, "<answer>ACME Corp\n123 Main St\nSpringfield</answer>", 1.0),
    (ADDRESS, "ACME Corp\n123 Main St\nSpringfield", 1.0),
    (ADDRESS, "<think>3 lines</think>\nACME Corp 123 Main St Springfeld", pytest.approx(1 - 1 / 33)),
    (ADDRESS, "Springfield", 0.0),
    (ADDRESS, "<think>reading the letterhead", 0.0),
]


@pytest.mark.parametrize("gold,completion,expected", OCR_ROWS)
def test_ocr(gold, completion, expected):
    assert ocr_reward(completion, S(gold)) == expected


def test_registered():
    assert get_reward("ocr") is ocr_reward


@pytest.mark.parametrize("gold", [None, "", "   ", [], ["ok", 3], 42, {"text": "a"}])
def test_bad_gold_raises(gold):
    with pytest.raises(ValueError):
        ocr_reward("a", S(gold))


LEV_ROWS = [
    ("", "", 0),
    ("abc", "", 3),
    ("", "abc", 3),
    ("kitten", "sitting", 3),
    ("flaw", "lawn", 2),
    ("intention", "execution", 5),
    ("abc", "abc", 0),
    ("abc", "acb", 2),
    ("日本語", "日本", 1),
]


@pytest.mark.parametrize("a,b,expected", LEV_ROWS)
def test_levenshtein(a, b, expected):
    assert levenshtein(a, b) == expected
    assert levenshtein(b, a) == expected


def test_levenshtein_numpy_path_agrees_with_python():
    rng = random.Random(1)
    for _ in range(200):
        a = "".join(rng.choice("abcd ") for _ in range(rng.randint(1, 40)))
        b = "".join(rng.choice("abcd ") for _ in range(rng.randint(1, 40)))
        big = max(len(a), len(b))
        assert _lev_numpy(max(a, b, key=len), min(a, b, key=len), big) == _lev_python(
            max(a, b, key=len), min(a, b, key=len), big
        )


def test_levenshtein_max_dist_stops_early():
    assert levenshtein("a" * 300, "b" * 300, max_dist=10) == 11
    assert levenshtein("abc", "abd", max_dist=1) == 1


def test_anls_long_transcription_is_fast():
    rng = random.Random(0)
    gold = "".join(rng.choice("abcdefghij") for _ in range(3000))
    pred = gold[:1500] + "x" + gold[1501:]
    t0 = time.perf_counter()
    assert anls(pred, [gold]) == pytest.approx(1 - 1 / 3000)
    assert time.perf_counter() - t0 < HANG_GUARD_S


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_hostile_completions(name):
    t0 = time.perf_counter()
    assert ocr_reward(ADVERSARIAL[name], S("OPEN 24 HOURS")) == 0.0
    assert ocr_reward(ADVERSARIAL[name], S("line one\nline two")) == 0.0
    assert time.perf_counter() - t0 < HANG_GUARD_S
