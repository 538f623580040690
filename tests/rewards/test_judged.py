"""Judges inside the scorer: weights, `task` routing to a judge, gates, the verdict cache, failed verdicts and
`rewards.on_error`, configuration errors. The judge here is a user judge kind (`module:Class`, as a user would add
one) whose verdict is a known function of the request, so every total can be computed by hand; the built-in judges
(models in process, a real HTTP server) are tested in tests/judges/."""

from __future__ import annotations

import math

import pytest

from mmrft.config import load_config
from mmrft.data.schema import Sample
from mmrft.errors import MmrftError
from mmrft.judges.base import JudgeResult
from mmrft.rewards.judged import build_judges
from mmrft.rewards.scoring import RewardError, Scorer

KIND = "tests.rewards.test_judged:LengthJudge"


class LengthJudge:
    """Scores the extracted answer's length / 10; an answer "fail" is a failed verdict (like a timeout)."""

    instances: list["LengthJudge"] = []

    def __init__(self, name: str, scale: float = 10.0):
        self.name, self.scale = name, scale
        self.seen: list = []
        self.closed = False
        LengthJudge.instances.append(self)

    def score(self, requests):
        self.seen.extend(requests)
        return [JudgeResult(None, error="timed out after 1.0 s", attempts=3) if r.answer == "fail"
                else JudgeResult(len(r.answer) / self.scale, raw=r.answer, latency_s=0.25) for r in requests]

    def close(self):
        self.closed = True


def sample(i: int, answer="3", reward="count") -> Sample:
    return Sample(id=f"s{i}", prompt=f"How many? ({i})", answer=answer, reward=reward, images=[],
                  metadata={"rubric": "be brief"})


def done(ans: str) -> str:
    return f"<think>look</think><answer>{ans}</answer>"


def scorer(weights, judge: dict, on_error="log") -> Scorer:
    return Scorer(weights, workers=0, on_error=on_error, judges=build_judges({"len": {"kind": KIND, **judge}}))


def test_judge_weighted_beside_a_rule_reward():
    sc = scorer({"task": 1.0, "len": 0.5}, {})
    texts = [done("3"), done("12"), done("three"), done("many")]
    out = sc.score(texts, [sample(0), sample(1), sample(2), sample(3)])
    # count: 1, 0, 1 (the count grader reads number words), 0; len: 0.1, 0.2, 0.5, 0.4
    assert out.totals.tolist() == pytest.approx([1 + 0.05, 0 + 0.1, 1 + 0.25, 0 + 0.2])
    assert out.components["len"] == pytest.approx([0.1, 0.2, 0.5, 0.4])
    assert out.correct.tolist() == [1.0, 0.0, 1.0, 0.0]
    judge = sc.judged.judges["len"][1]
    r = judge.seen[0]
    assert (r.sample_id, r.question, r.answer, r.gold, r.rubric, r.completion) == (
        "s0", "How many? (0)", "3", "3", "be brief", done("3"))
    stats = out.judges["len"]
    assert (stats.judged, stats.calls, stats.cached, stats.errors, stats.latency_s) == (4, 4, 0, 0, 0.25)
    sc.close()
    assert judge.closed


def test_agreeing_answers_are_judged_once_in_a_batch_and_across_steps():
    sc = scorer({"len": 1.0}, {})
    s = sample(0)
    out = sc.score([done("42"), "<think>other words</think><answer>42</answer>", done("7"), done("42")], [s] * 4)
    assert out.components["len"] == pytest.approx([0.2, 0.2, 0.1, 0.2])
    assert (out.judges["len"].calls, out.judges["len"].cached) == (2, 2)
    again = sc.score([done("42"), done("7")], [s, s])
    assert (again.judges["len"].calls, again.judges["len"].cached) == (0, 2)
    assert again.totals.tolist() == pytest.approx([0.2, 0.1])
    other = sc.score([done("42")], [sample(1)])  # another sample: its own verdict
    assert other.judges["len"].calls == 1


def test_cache_off_judges_every_completion():
    sc = scorer({"len": 1.0}, {"cache": False})
    out = sc.score([done("42")] * 3, [sample(0)] * 3)
    assert (out.judges["len"].calls, out.judges["len"].cached) == (3, 0)


def test_gate_on_the_format_reward():
    sc = scorer({"task": 1.0, "len": 1.0}, {"gate": "format"})
    texts = [done("3"), "3", "<answer>33</answer>"]  # only the first has the think/answer format
    out = sc.score(texts, [sample(0), sample(1), sample(2)])
    assert out.components["len"] == [pytest.approx(0.1), 0.0, 0.0]
    assert (out.judges["len"].calls, out.judges["len"].skipped) == (1, 2)
    assert [r.answer for r in sc.judged.judges["len"][1].seen] == ["3"]
    # with `format` weighed, the gate reads the batch's own format scores
    sc2 = scorer({"task": 1.0, "format": 0.5, "len": 1.0}, {"gate": "format"})
    out2 = sc2.score(texts, [sample(0), sample(1), sample(2)])
    assert out2.components["format"] == [1.0, 0.0, 0.0]
    assert out2.totals.tolist() == pytest.approx([1 + 0.5 + 0.1, 1.0, 0.0])


def test_no_rule_gate_and_a_sample_whose_own_reward_is_the_judge():
    sc = scorer({"task": 1.0, "len": 0.5}, {"gate": "no_rule"})
    samples = [sample(0), sample(1, answer="a red car", reward="len")]
    out = sc.score([done("3"), done("a red car, parked")], samples)
    # row 0: count only (the judge does not apply: NaN); row 1: task -> len (weight 1) + len (0.5) = 1.5 * 1.7
    assert out.components["count"][0] == 1.0 and math.isnan(out.components["count"][1])
    assert math.isnan(out.components["len"][0]) and out.components["len"][1] == pytest.approx(1.7)
    assert out.totals.tolist() == pytest.approx([1.0, 1.5 * 1.7])
    assert out.correct.tolist() == [1.0, 1.0]  # a verdict >= 1 counts as correct when the judge is the task's
    assert [r.sample_id for r in sc.judged.judges["len"][1].seen] == ["s1"]


def test_a_failed_verdict_scores_zero_and_is_counted_or_stops_the_run():
    sc = scorer({"task": 1.0, "len": 1.0}, {})
    out = sc.score([done("fail"), done("3")], [sample(0), sample(1)])
    assert out.components["len"] == pytest.approx([0.0, 0.1])
    assert out.judges["len"].errors == 1
    assert out.errors == ["id=s0 judge=len: timed out after 1.0 s (after 3 attempt(s))"]
    # a failed verdict is not cached: the next step asks again
    again = sc.score([done("fail")], [sample(0)])
    assert again.judges["len"].calls == 1
    strict = scorer({"len": 1.0}, {}, on_error="raise")
    with pytest.raises(RewardError, match="id=s0 judge=len: timed out"):
        strict.score([done("fail")], [sample(0)])


def test_judges_from_a_config_and_configuration_errors():
    cfg = load_config(None, ["rewards.weights={task: 1.0, len: 0.25}",
                             f"rewards.judges={{len: {{kind: '{KIND}', scale: 4.0, gate: format}}}}",
                             "rewards.workers=0"])
    sc = Scorer.from_config(cfg)
    out = sc.score([done("12")], [sample(0)])
    assert out.totals.tolist() == pytest.approx([0.25 * 0.5])
    sc.close()
    with pytest.raises(MmrftError, match=r"rewards.judges.count: the name is taken by a rule reward"):
        build_judges({"count": {"kind": KIND}})
    with pytest.raises(MmrftError, match=r"rewards.judges.j.kind: .*nope"):
        build_judges({"j": {"kind": "nope"}})
    with pytest.raises(MmrftError, match=r"rewards.judges.j.gate: expected always, no_rule or a rule reward"):
        build_judges({"j": {"kind": KIND, "gate": "sometimes"}})
    with pytest.raises(MmrftError, match=r"rewards.judges.j: expected a mapping"):
        build_judges({"j": "http"})
    # a judge that fails to build closes the ones built before it
    LengthJudge.instances.clear()
    with pytest.raises(MmrftError, match=r"rewards.judges.b: .*bogus"):
        build_judges({"a": {"kind": KIND}, "b": {"kind": KIND, "bogus": 1}})
    assert [j.closed for j in LengthJudge.instances] == [True]
