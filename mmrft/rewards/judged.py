"""Judges as reward components: which rows a judge sees (its gate), a cache of verdicts, and fault accounting.

A run's `rewards.judges` names judges (`mmrft.judges`: generative judges in process or over HTTP, reward models);
`rewards.weights` weighs each by its name like any reward, and a sample may name one as its own reward (`reward:`
in the data row), which `task` then stands for. `JudgedRewards.score` is called by `mmrft.rewards.scoring.Scorer`
once per batch, after the rule rewards, so that a gate can read their scores:

* `gate: always` (default): every row is judged.
* `gate: <reward name>` (e.g. `format`): only rows where that rule reward scored 1 (taken from this batch's
  components when the run weighs it, else computed here, in process); the others score 0 for this judge.
* `gate: no_rule`: only rows whose sample names no rule reward of its own (its `reward` is this judge, or unset,
  where the default grader would have guessed); the other rows get NaN (not applied), like a component a sample
  does not use.

Verdicts are cached by (judge, sample id, extracted answer): completions that agree on the answer are judged once,
in a batch and across steps (`cache: false` turns it off, e.g. for a judge that reads the reasoning). A failed
verdict (timeout, unparsable reply, server down) scores 0 and is counted (`JudgeStats.errors`); with
`rewards.on_error: raise` it stops the run instead.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from mmrft.errors import MmrftError
from mmrft.judges.base import JUDGE_KINDS, Judge, JudgeRequest, JudgeResult
from mmrft.rewards.extract import extract_answer
from mmrft.rewards.registry import REWARDS, get_reward

log = logging.getLogger("mmrft.rewards")

__all__ = ["JudgeSpec", "JudgeStats", "JudgedRewards", "build_judges", "GATES"]

GATES = ("always", "no_rule")  # or the name of a rule reward
CACHE_SIZE = 100_000


@dataclass(frozen=True)
class JudgeSpec:
    """One entry of `rewards.judges`: the judge kind and its options, plus how the scorer uses it."""

    name: str
    kind: str
    gate: str = "always"
    cache: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, name: str, entry: Any) -> "JudgeSpec":
        where = f"rewards.judges.{name}"
        if not isinstance(entry, Mapping):
            raise MmrftError(f"{where}: expected a mapping with at least `kind`, got {type(entry).__name__}")
        entry = dict(entry)
        kind = entry.pop("kind", None)
        if not isinstance(kind, str) or not kind:
            raise MmrftError(f"{where}.kind: expected one of {sorted(JUDGE_KINDS)} (or `module:Class`), got {kind!r}")
        gate = entry.pop("gate", "always")
        if not isinstance(gate, str) or (gate not in GATES and gate not in REWARDS):
            raise MmrftError(f"{where}.gate: expected always, no_rule or a rule reward's name (e.g. format), "
                             f"got {gate!r}")
        cache = entry.pop("cache", True)
        if not isinstance(cache, bool):
            raise MmrftError(f"{where}.cache: expected true or false, got {cache!r}")
        return cls(name, kind, gate, cache, entry)


@dataclass
class JudgeStats:
    """What one judge did in a batch: rows it judged (`calls` requests sent, `cached` answered from the cache),
    rows its gate left out (`skipped`), failed verdicts (`errors`) and the mean latency of the requests sent."""

    judged: int = 0
    calls: int = 0
    cached: int = 0
    skipped: int = 0
    errors: int = 0
    latency_s: float = 0.0

    def add(self, other: "JudgeStats") -> "JudgeStats":
        calls = self.calls + other.calls
        latency = (self.latency_s * self.calls + other.latency_s * other.calls) / calls if calls else 0.0
        return JudgeStats(self.judged + other.judged, calls, self.cached + other.cached,
                          self.skipped + other.skipped, self.errors + other.errors, latency)


def build_judges(entries: Mapping[str, Any]) -> dict[str, tuple[JudgeSpec, Judge]]:
    """`rewards.judges` -> {name: (spec, judge)}; a judge name may not shadow a registered rule reward."""
    out: dict[str, tuple[JudgeSpec, Judge]] = {}
    try:
        for name, entry in (entries or {}).items():
            if name in REWARDS or name == "task":
                raise MmrftError(f"rewards.judges.{name}: the name is taken by a rule reward; name the judge "
                                 "something else")
            spec = JudgeSpec.from_config(name, entry)
            try:
                cls = JUDGE_KINDS[spec.kind]
            except KeyError as e:
                raise MmrftError(f"rewards.judges.{name}.kind: {e.args[0]}") from None
            try:
                out[name] = (spec, cls(name=name, **dict(spec.options)))
            except (TypeError, ValueError, KeyError) as e:  # an unknown option, a bad value, an unknown parser
                raise MmrftError(f"rewards.judges.{name}: {e.args[0] if e.args else e}") from e
    except BaseException:
        for _, judge in out.values():
            judge.close()
        raise
    return out


def _gold(answer: Any) -> Optional[str]:
    if answer is None or answer == "":
        return None
    return ", ".join(str(a) for a in answer) if isinstance(answer, list) else str(answer)


class JudgedRewards:
    """The judges of a run, their gates and their verdict cache (see the module docstring)."""

    def __init__(self, judges: Mapping[str, tuple[JudgeSpec, Judge]], cache_size: int = CACHE_SIZE):
        self.judges = dict(judges)
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple, JudgeResult] = OrderedDict()

    @property
    def names(self) -> list[str]:
        return list(self.judges)

    def gate_reward(self, name: str) -> Optional[str]:
        """The rule reward `name`'s gate reads, if any (the scorer computes it with the batch when weighed)."""
        gate = self.judges[name][0].gate
        return None if gate in GATES else gate

    def applies(self, name: str, sample) -> bool:
        """Whether judge `name` scores `sample` at all (`gate: no_rule` leaves out samples with a rule reward)."""
        if self.judges[name][0].gate != "no_rule":
            return True
        own = sample.reward
        names = list(own) if isinstance(own, dict) else [own] if own else []
        return all(n in self.judges for n in names)

    def score(self, name: str, texts: Sequence[str], samples: Sequence, gate_scores: Optional[Sequence[float]] = None
              ) -> tuple[list[float], list[Optional[str]], JudgeStats]:
        """Judge `name`'s score of each row (NaN where it does not apply), the error of each failed row, and the
        batch's stats. `gate_scores[i]`: the gate reward's score of row i (for `gate: <reward>`)."""
        spec, judge = self.judges[name]
        n = len(texts)
        scores = [math.nan] * n
        errors: list[Optional[str]] = [None] * n
        stats = JudgeStats()
        gate_fn = get_reward(spec.gate) if spec.gate not in GATES and gate_scores is None else None
        pending: dict[tuple, list[int]] = {}
        requests: dict[tuple, JudgeRequest] = {}
        for i, (text, sample) in enumerate(zip(texts, samples)):
            if not self.applies(name, sample):
                continue
            if spec.gate not in GATES:
                g = gate_scores[i] if gate_scores is not None else float(gate_fn(text, sample.reward_view()))
                if not g >= 1.0 - 1e-6:
                    scores[i] = 0.0
                    stats.skipped += 1
                    continue
            stats.judged += 1
            answer = extract_answer(text) or ""
            key = (name, sample.id, answer.strip()) if spec.cache else (name, i)  # cache off: a key per row
            if spec.cache and key in self._cache:
                self._cache.move_to_end(key)
                scores[i] = self._cache[key].score
                stats.cached += 1
                continue
            pending.setdefault(key, []).append(i)
            if key not in requests:
                requests[key] = JudgeRequest(
                    sample_id=sample.id, question=sample.prompt, completion=text, answer=answer,
                    gold=_gold(sample.answer), rubric=sample.metadata.get("rubric"), images=tuple(sample.images),
                    metadata=dict(sample.metadata))
            else:
                stats.cached += 1  # a duplicate in this batch: judged once
        keys = list(requests)
        t0 = time.monotonic()
        results = judge.score([requests[k] for k in keys]) if keys else []
        if len(results) != len(keys):
            raise MmrftError(f"judge {name!r} returned {len(results)} results for {len(keys)} requests")
        stats.calls = len(keys)
        if keys:
            latencies = [r.latency_s for r in results if r.latency_s]
            stats.latency_s = sum(latencies) / len(latencies) if latencies else (time.monotonic() - t0) / len(keys)
        for key, res in zip(keys, results):
            if res.ok:
                value = float(res.score)
                if spec.cache:
                    self._cache[key] = res
                    if len(self._cache) > self.cache_size:
                        self._cache.popitem(last=False)
            else:
                value = 0.0
                stats.errors += len(pending[key])
            for i in pending[key]:
                scores[i] = value
                if not res.ok:
                    errors[i] = (f"id={samples[i].id} judge={name}: {res.error or 'no score'}"
                                 f" (after {res.attempts} attempt(s))")
        return scores, errors, stats

    def close(self) -> None:
        for _, judge in self.judges.values():
            try:
                judge.close()
            except Exception as e:  # closing must not mask the run's own outcome
                log.warning("closing judge failed: %s", e)
        self._cache.clear()
