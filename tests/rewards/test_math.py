import threading
import time

import pytest

import mmrft.rewards.math as math_mod
from mmrft.rewards import math_reward


def S(answer, **metadata):
    return {"id": "m", "answer": answer, "metadata": metadata}


MATH_ROWS = [
    ("\\frac{1}{2}", "So the answer is \\boxed{0.5}.", 1.0),
    ("0.5", "The answer is \\frac{1}{2}.", 1.0),
    ("$\\frac{1}{2}$", "<answer>1/2</answer>", 1.0),
    (0.5, "<think>half</think><answer>\\frac{1}{2}</answer>", 1.0),
    ("2", "<answer>\\sqrt{4}</answer>", 1.0),
    ("3\\sqrt{2}", "\\boxed{3\\sqrt{2}}", 1.0),
    ("\\frac{\\sqrt{3}}{2}", "\\boxed{\\frac{1}{2}\\sqrt{3}}", 1.0),
    ("x^2+2x+1", "Expanding, we get \\boxed{(x+1)^2}", 1.0),
    (42, "The answer is 42 apples.", 1.0),
    ("42", "Final Answer: The final answer is $42$. I hope it is correct.", 1.0),
    ("5", "x = 5", 1.0),
    ("1000", "\\boxed{1,000}", 1.0),
    ("\\{1,2\\}", "\\boxed{\\{2, 1\\}}", 1.0),
    ("(1,2)", "\\boxed{(1, 2)}", 1.0),
    ("\\dfrac{3}{4}", "\\boxed{0.75}", 1.0),
    ("3", "\\boxed{3\\sqrt{2}}", 0.0),
    ("\\frac{1}{2}", "\\boxed{\\frac{1}{3}}", 0.0),
    ("-3", "\\boxed{3}", 0.0),
    ("[1,2)", "\\boxed{[1,2]}", 0.0),
    ("\\pi", "\\boxed{3.14}", 0.0),
    ("7", "<think>so the answer is 7", 0.0),  # truncated
    ("7", "I don't know.", 0.0),
    ("5", "1e99999999", 0.0),
    ("5", "\\boxed{" + "{" * 10_000 + "5" + "}" * 10_000 + "}", 0.0),  # over MAX_ANSWER_CHARS
    ("5", "x" * 100_000, 0.0),
    ("5", "", 0.0),
    ("5", None, 0.0),
]


@pytest.mark.parametrize("gold,completion,expected", MATH_ROWS)
def test_math(gold, completion, expected):
    assert math_reward(completion, S(gold)) == expected


@pytest.mark.parametrize("gold", [None, "", ["1"], True])
def test_math_bad_gold_raises(gold):
    with pytest.raises(ValueError):
        math_reward("1", S(gold))


def test_math_pathological_power_times_out(monkeypatch):
    monkeypatch.setattr(math_mod, "TIMEOUT_S", 1)
    t0 = time.perf_counter()
    assert math_reward("\\boxed{2^{2^{2^{2^{100}}}}}", S("3")) == 0.0
    assert time.perf_counter() - t0 < 30  # cut off at 1 s per parse; would run for hours otherwise


def test_math_works_off_the_main_thread():
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("v", math_reward("\\boxed{0.5}", S("\\frac{1}{2}"))))
    t.start()
    t.join(30)
    assert out == {"v": 1.0}


def test_math_verify_timeouts_only_in_main_thread_without_outer_timer():
    import signal

    assert math_mod._own_timeout() == math_mod.TIMEOUT_S
    signal.signal(signal.SIGALRM, lambda *a: None)
    signal.setitimer(signal.ITIMER_REAL, 100)
    try:
        assert math_mod._own_timeout() is None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("t", math_mod._own_timeout()))
    t.start()
    t.join()
    assert box == {"t": None}


@pytest.fixture()
def counted_parses(monkeypatch):
    monkeypatch.setattr(math_mod, "_VERDICT_CACHE", type(math_mod._VERDICT_CACHE)())
    calls = []
    real = math_mod._parse_pred

    def parse(text, timeout):
        calls.append(text)
        return real(text, timeout)

    monkeypatch.setattr(math_mod, "_parse_pred", parse)
    return calls


def test_identical_answers_are_verified_once(counted_parses):
    gold = {"answer": "\\frac{1}{2}"}
    group = ["<think>half</think><answer>\\frac{1}{2}</answer>", "<think>so</think><answer>\\frac{1}{2}</answer>",
             "<think>hmm</think><answer>0.5</answer>", "<think>no</think><answer>\\frac{1}{3}</answer>",
             "The answer is \\boxed{0.5}"]
    assert [math_reward(c, gold) for c in group] == [1.0, 1.0, 1.0, 0.0, 1.0]
    assert counted_parses == ["\\frac{1}{2}", "0.5", "\\frac{1}{3}"]  # three distinct answers, three parses
    # the verdict is per gold: the same answer to another question is graded afresh
    assert math_reward(group[0], {"answer": "2"}) == 0.0
    assert counted_parses[-1] == "\\frac{1}{2}" and len(counted_parses) == 4


def test_verdict_cache_is_bounded_and_skips_interrupted_calls(counted_parses, monkeypatch):
    monkeypatch.setattr(math_mod, "_VERDICT_CACHE_MAX", 3)
    for k in range(6):
        math_reward(f"<answer>{k}</answer>", {"answer": "3"})
    assert list(math_mod._VERDICT_CACHE) == [("3", "3"), ("3", "4"), ("3", "5")]  # oldest evicted first

    def hang(text, timeout):
        raise math_mod_timeout()

    class math_mod_timeout(BaseException):  # what a time limit raises inside the worker
        pass

    monkeypatch.setattr(math_mod, "_parse_pred", hang)
    with pytest.raises(math_mod_timeout):
        math_reward("<answer>7</answer>", {"answer": "3"})
    assert ("3", "7") not in math_mod._VERDICT_CACHE
