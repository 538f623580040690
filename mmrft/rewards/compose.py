"""Weighted composition of registered rewards."""

from __future__ import annotations

import math
from typing import Dict, List, Mapping, Tuple, Union

from mmrft.rewards.registry import RewardFn, get_reward

RewardSpec = Union[str, Mapping[str, float], "CompositeReward"]


class CompositeReward:
    """``total = sum(weight * reward(completion, sample))`` over named rewards.

    Calling it returns ``(total, {name: score})``.  Exceptions from the
    component rewards propagate (use :class:`~mmrft.rewards.runner.RewardRunner`
    for isolation, time limits and error capture).
    """

    def __init__(self, weights: Mapping[str, float]):
        if not weights:
            raise ValueError("a reward spec needs at least one reward")
        self.weights: Dict[str, float] = {}
        self.fns: Dict[str, RewardFn] = {}
        for name, w in weights.items():
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
                raise ValueError(f"weight of reward {name!r} must be a finite number, got {w!r}")
            self.fns[name] = get_reward(name)  # KeyError for unknown names
            self.weights[name] = float(w)

    @property
    def names(self) -> List[str]:
        return list(self.weights)

    @property
    def spec(self) -> Dict[str, float]:
        """A plain, picklable spec that rebuilds this reward via :func:`build_reward`."""
        return dict(self.weights)

    def total(self, components: Mapping[str, float]) -> float:
        return float(sum(self.weights[n] * components[n] for n in self.weights))

    def __call__(self, completion: str, sample: dict) -> Tuple[float, Dict[str, float]]:
        comps = {name: float(fn(completion, sample)) for name, fn in self.fns.items()}
        return self.total(comps), comps

    def __repr__(self) -> str:
        return f"CompositeReward({self.weights!r})"


def normalize_spec(spec: RewardSpec) -> Dict[str, float]:
    """``"math"`` -> ``{"math": 1.0}``; ``["format", "math"]`` -> weight 1 each; dicts are copied."""
    if isinstance(spec, CompositeReward):
        return spec.spec
    if isinstance(spec, str):
        return {spec: 1.0}
    if isinstance(spec, Mapping):
        return {str(k): v for k, v in spec.items()}
    if isinstance(spec, (list, tuple)) and all(isinstance(s, str) for s in spec):
        return {s: 1.0 for s in spec}
    raise TypeError(
        f"reward spec must be a name, a list of names or a {{name: weight}} dict, got {type(spec).__name__}"
    )


def build_reward(spec: RewardSpec) -> CompositeReward:
    """Build a :class:`CompositeReward` from a name, a list of names or ``{name: weight}``."""
    return CompositeReward(normalize_spec(spec))
