"""Scoring completions of a batch of samples: resolves each sample's reward spec, runs the rule rewards under their
time limit (`mmrft.rewards.RewardRunner`), then the run's judges (`mmrft.rewards.judged`: model-based rewards,
batched, gated and cached), and returns totals, per-component scores and correctness."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import torch

from mmrft.data.schema import Sample
from mmrft.errors import MmrftError
from mmrft.rewards.judged import JudgedRewards, JudgeStats, build_judges
from mmrft.rewards.runner import RewardRunner

log = logging.getLogger("mmrft.rewards")
TASK = "task"  # in `rewards.weights`, stands for each sample's own reward


@dataclass
class Scores:
    totals: torch.Tensor  # [N] weighted sum of components
    correct: torch.Tensor  # [N] 1.0 where the sample's own (task) reward reached 1
    components: dict[str, list[float]] = field(default_factory=dict)  # name -> [N] (NaN where not applied)
    timeouts: int = 0
    errors: list[str] = field(default_factory=list)
    judges: dict[str, JudgeStats] = field(default_factory=dict)  # judge name -> what it did for this batch

    def select(self, rows: list[int]) -> "Scores":
        return Scores(self.totals[rows], self.correct[rows], {k: [v[i] for i in rows] for k, v in self.components.items()},
                      self.timeouts, list(self.errors), dict(self.judges))

    @staticmethod
    def concat(parts: list["Scores"]) -> "Scores":
        names = {k for p in parts for k in p.components}
        comps = {k: [x for p in parts for x in p.components.get(k, [float("nan")] * len(p.totals))] for k in names}
        judges: dict[str, JudgeStats] = {}
        for p in parts:
            for k, v in p.judges.items():
                judges[k] = judges[k].add(v) if k in judges else v
        return Scores(torch.cat([p.totals for p in parts]), torch.cat([p.correct for p in parts]), comps,
                      sum(p.timeouts for p in parts), [e for p in parts for e in p.errors], judges)


class RewardError(MmrftError):
    """Reward code raised on a sample and `rewards.on_error` is `raise`."""


class Scorer:
    def __init__(self, weights: dict[str, float], default: str = "exact", timeout_s: float = 5.0, workers: int = 1,
                 on_error: str = "log", imports: tuple[str, ...] | list[str] = (), judges=None):
        if on_error not in ("log", "raise"):
            raise MmrftError(f"rewards.on_error: {on_error!r} is not one of log, raise")
        self.on_error = on_error
        self.weights = dict(weights) or {TASK: 1.0}
        self.default = default
        self.timeout_s = timeout_s
        self.workers = workers
        self.imports = tuple(imports)  # the config's `imports:`, which reward workers import too
        self._runners: dict[tuple, RewardRunner] = {}
        # name -> (JudgeSpec, Judge), from `build_judges`; the scorer closes them
        self.judged = JudgedRewards(judges or {})

    @classmethod
    def from_config(cls, cfg) -> "Scorer":
        """The scorer of a run's `rewards:` section (`mmrft.config.Config`); its workers import the config's
        `imports:` too; its judges (`rewards.judges`) are built (and servers checked) here."""
        r = cfg.rewards
        return cls(r.weights, r.default, r.timeout_s, r.workers, r.on_error, imports=cfg.imports,
                   judges=build_judges(r.judges))

    def task_reward(self, sample: Sample) -> str:
        if isinstance(sample.reward, dict) and sample.reward:
            return max(sample.reward.items(), key=lambda kv: kv[1])[0]
        return sample.reward or self.default

    def spec_for(self, sample: Sample) -> dict[str, float]:
        spec: dict[str, float] = {}
        for name, w in self.weights.items():
            if name == TASK:
                own = sample.reward if isinstance(sample.reward, dict) else {self.task_reward(sample): 1.0}
                for k, v in own.items():
                    spec[k] = spec.get(k, 0.0) + w * v
            else:
                spec[name] = spec.get(name, 0.0) + w
        return spec

    def _runner(self, spec: dict[str, float]) -> RewardRunner:
        key = tuple(sorted(spec.items()))
        if key not in self._runners:
            self._runners[key] = RewardRunner(spec, timeout_s=self.timeout_s, workers=self.workers,
                                                   imports=self.imports)
        return self._runners[key]

    def component_matrix(self, scores: Scores, samples: list[Sample]) -> tuple[torch.Tensor, list[float]]:
        """The rewards of `scores` one column per entry of `rewards.weights` ([N, K]; `task` is each row's own
        reward, whatever its name), and the K weights: what a multi-reward estimator (GDPO) normalises one by one.
        A reward not computed for a row (NaN) counts 0, as in the total."""
        names = list(self.weights)
        out = torch.zeros(len(samples), len(names))
        for i, sample in enumerate(samples):
            for j, name in enumerate(names):
                key = self.task_reward(sample) if name == TASK else name
                value = scores.components.get(key, [float("nan")] * len(samples))[i]
                out[i, j] = 0.0 if math.isnan(value) else value
        return out, [float(self.weights[n]) for n in names]

    def score(self, texts: list[str], samples: list[Sample], trajectories: list[dict | None] | None = None) -> Scores:
        """`samples[i]` is the sample completion `texts[i]` answers (repeat samples for groups). `trajectories[i]`:
        the record of a multi-turn row (its turns, tool calls, how it ended), given to the rewards as
        `sample["trajectory"]` (trajectory-aware rewards read it; graders read the final answer, `texts[i]`)."""
        n = len(texts)
        totals = torch.zeros(n)
        correct = torch.zeros(n)
        components: dict[str, list[float]] = {}
        timeouts, errors = 0, []
        judge_stats: dict[str, JudgeStats] = {}
        by_spec: dict[tuple, list[int]] = {}
        for i, s in enumerate(samples):
            by_spec.setdefault(tuple(sorted(self.spec_for(s).items())), []).append(i)
        for key, idx in by_spec.items():
            views = [samples[i].reward_view() for i in idx]
            if trajectories is not None:  # with the name of the sample's own grader, for rewards like tool_bonus
                views = [dict(v, trajectory=trajectories[i], task_reward=self.task_reward(samples[i]))
                         if trajectories[i] is not None else v for v, i in zip(views, idx)]
            spec = dict(key)
            rules = {k: w for k, w in spec.items() if k not in self.judged.judges}
            if rules:
                batch = self._runner(rules).score([texts[i] for i in idx], views)
                timeouts += batch.timeouts
                errors.extend(batch.errors)
                batch_components = dict(batch.components)
                batch_totals = [float(t) for t in batch.totals]
            else:
                batch_components, batch_totals = {}, [0.0] * len(idx)
            for name in spec.keys() - rules.keys():  # the judges, after the rule rewards their gates may read
                vals, errs, stats = self.judged.score(name, [texts[i] for i in idx], [samples[i] for i in idx],
                                                      batch_components.get(self.judged.gate_reward(name) or ""))
                batch_components[name] = vals
                batch_totals = [t + spec[name] * v if not math.isnan(v) else t for t, v in zip(batch_totals, vals)]
                errors.extend(e for e in errs if e)
                judge_stats[name] = judge_stats[name].add(stats) if name in judge_stats else stats
            for j, i in enumerate(idx):
                totals[i] = batch_totals[j]
                own = self.task_reward(samples[i])
                correct[i] = float(batch_components.get(own, [0.0] * len(idx))[j] >= 1.0 - 1e-6)
            for name, vals in batch_components.items():
                col = components.setdefault(name, [float("nan")] * n)
                for j, i in enumerate(idx):
                    col[i] = vals[j]
        if errors and self.on_error == "raise":
            raise RewardError(f"reward code failed ({len(errors)} of {n} completions); first: {errors[0]}")
        for e in errors:
            log.warning("reward error: %s", e)
        return Scores(totals, correct, components, timeouts, errors, judge_stats)

    def close(self) -> None:
        for r in self._runners.values():
            r.close()
        self._runners.clear()
        self.judged.close()
