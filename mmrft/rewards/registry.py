"""The reward registry: name -> reward function.

A reward is ``fn(completion: str, sample: dict) -> float``.  Built-in rewards
register themselves when their module is imported (on the first lookup); user
rewards either use :func:`register_reward` in a module the config names under
``imports:`` (the grading workers of :class:`mmrft.rewards.runner.RewardRunner`
import those modules too) or are referred to as ``"some.module:function"``,
imported and registered on first use.

``REWARDS`` is a :class:`mmrft.registry.Registry`; this module imports nothing else from ``mmrft``.
"""

from __future__ import annotations

from typing import Callable, List

from mmrft.registry import Registry

RewardFn = Callable[[str, dict], float]

# The modules that define the built-in rewards; imported on the first lookup, so that
# ``from mmrft.rewards.registry import get_reward`` alone is enough.
_BUILTIN_MODULES = (
    "mmrft.rewards.format",
    "mmrft.rewards.numeric",
    "mmrft.rewards.math",
    "mmrft.rewards.choice",
    "mmrft.rewards.grounding",
    "mmrft.rewards.detection",
    "mmrft.rewards.ocr",
    "mmrft.rewards.chart",
    "mmrft.rewards.gui",
    "mmrft.rewards.temporal",
    "mmrft.rewards.shaping",
    "mmrft.rewards.trajectory",
)

# name -> reward; "some.module:function" names are imported and registered under that string on first use
REWARDS: Registry[RewardFn] = Registry("reward", builtin_modules=_BUILTIN_MODULES, import_paths=True)


def register_reward(name: str, *, override: bool = False) -> Callable[[RewardFn], RewardFn]:
    """Decorator registering ``fn`` under ``name``; returns ``fn`` unchanged.

    Registering a *different* function under a taken name raises ``ValueError``
    unless ``override=True``.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"reward name must be a non-empty string, got {name!r}")

    def decorator(fn: RewardFn) -> RewardFn:
        if not callable(fn):
            raise TypeError(f"reward {name!r} must be callable, got {type(fn).__name__}")
        return REWARDS.register(name, override=override)(fn)

    return decorator


def get_reward(name: str) -> RewardFn:
    """``REWARDS[name]``: the reward registered as ``name``; ``"pkg.module:function"`` is imported and registered
    under that exact string. Unknown names raise ``KeyError`` listing the known ones."""
    if not isinstance(name, str):
        raise KeyError(f"reward name must be a string, got {type(name).__name__}")
    return REWARDS[name]


def list_rewards() -> List[str]:
    """Sorted names of all registered rewards (built-ins included)."""
    return REWARDS.names()
