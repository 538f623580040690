"""Scoring completions of a batch of samples: resolves each sample's reward spec, runs the rewards under their time
limit (`mmrft.rewards.RewardRunner`), and returns totals, per-component scores and correctness."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from mmrft.data.schema import Sample
from mmrft.errors import MmrftError
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

    def select(self, rows: list[int]) -> "Scores":
        return Scores(self.totals[rows], self.correct[rows], {k: [v[i] for i in rows] for k, v in self.components.items()},
                      self.timeouts, list(self.errors))

    @staticmethod
    def concat(parts: list["Scores"]) -> "Scores":
        names = {k for p in parts for k in p.components}
        comps = {k: [x for p in parts for x in p.components.get(k, [float("nan")] * len(p.totals))] for k in names}
        return Scores(torch.cat([p.totals for p in parts]), torch.cat([p.correct for p in parts]), comps,
                      sum(p.timeouts for p in parts), [e for p in parts for e in p.errors])


class RewardError(MmrftError):
    """Reward code raised on a sample and `rewards.on_error` is `raise`."""


class Scorer:
    def __init__(self, weights: dict[str, float], default: str = "exact", timeout_s: float = 5.0, workers: int = 1,
                 on_error: str = "log", imports: tuple[str, ...] | list[str] = ()):
        if on_error not in ("log", "raise"):
            raise MmrftError(f"rewards.on_error: {on_error!r} is not one of log, raise")
        self.on_error = on_error
        self.weights = dict(weights) or {TASK: 1.0}
        self.default = default
        self.timeout_s = timeout_s
        self.workers = workers
        self.imports = tuple(imports)  # the config's `imports:`, which reward workers import too
        self._runners: dict[tuple, RewardRunner] = {}

    @classmethod
    def from_config(cls, cfg) -> "Scorer":
        """The scorer of a run's `rewards:` section (`mmrft.config.Config`); its workers import the config's
        `imports:` too."""
        r = cfg.rewards
        return cls(r.weights, r.default, r.timeout_s, r.workers, r.on_error, imports=cfg.imports)

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

    def score(self, texts: list[str], samples: list[Sample], trajectories: list[dict | None] | None = None) -> Scores:
        """`samples[i]` is the sample completion `texts[i]` answers (repeat samples for groups). `trajectories[i]`:
        the record of a multi-turn row (its turns, tool calls, how it ended), given to the rewards as
        `sample["trajectory"]` (trajectory-aware rewards read it; graders read the final answer, `texts[i]`)."""
        n = len(texts)
        totals = torch.zeros(n)
        correct = torch.zeros(n)
        components: dict[str, list[float]] = {}
        timeouts, errors = 0, []
        by_spec: dict[tuple, list[int]] = {}
        for i, s in enumerate(samples):
            by_spec.setdefault(tuple(sorted(self.spec_for(s).items())), []).append(i)
        for key, idx in by_spec.items():
            views = [samples[i].reward_view() for i in idx]
            if trajectories is not None:  # with the name of the sample's own grader, for rewards like tool_bonus
                views = [dict(v, trajectory=trajectories[i], task_reward=self.task_reward(samples[i]))
                         if trajectories[i] is not None else v for v, i in zip(views, idx)]
            batch = self._runner(dict(key)).score([texts[i] for i in idx], views)
            timeouts += batch.timeouts
            errors.extend(batch.errors)
            for j, i in enumerate(idx):
                totals[i] = batch.totals[j]
                own = self.task_reward(samples[i])
                correct[i] = float(batch.components.get(own, [0.0] * len(idx))[j] >= 1.0 - 1e-6)
            for name, vals in batch.components.items():
                col = components.setdefault(name, [float("nan")] * n)
                for j, i in enumerate(idx):
                    col[i] = vals[j]
        if errors and self.on_error == "raise":
            raise RewardError(f"reward code failed ({len(errors)} of {n} completions); first: {errors[0]}")
        for e in errors:
            log.warning("reward error: %s", e)
        return Scores(totals, correct, components, timeouts, errors)

    def close(self) -> None:
        for r in self._runners.values():
            r.close()
        self._runners.clear()
