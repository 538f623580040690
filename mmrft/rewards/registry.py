"""A small name -> reward-function registry.

A reward is ``fn(completion: str, sample: dict) -> float``.  Built-in rewards
register themselves when :mod:`mmrft.rewards` is imported; user rewards either
use :func:`register_reward` or are referred to as ``"some.module:function"``,
which :func:`get_reward` imports and registers on first use (this is also how
the isolated grading worker of :class:`mmrft.rewards.runner.RewardRunner`
finds them again after re-importing).

This module deliberately imports nothing from the rest of ``mmrft``.
"""

from __future__ import annotations

import importlib
import threading
from typing import Callable, Dict, List

RewardFn = Callable[[str, dict], float]

_REGISTRY: Dict[str, RewardFn] = {}
_LOCK = threading.RLock()

# Modules that define the built-in rewards; imported lazily by get_reward so that
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
)
_builtins_loaded = False


def _same_function(a: RewardFn, b: RewardFn) -> bool:
    # A module imported twice (e.g. by path and by package name) re-registers an
    # equivalent function; that is not a conflict.
    return a is b or (
        getattr(a, "__module__", None) == getattr(b, "__module__", None)
        and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", None)
    )


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
        with _LOCK:
            old = _REGISTRY.get(name)
            if old is not None and not override and not _same_function(old, fn):
                raise ValueError(
                    f"reward name {name!r} is already registered to "
                    f"{getattr(old, '__module__', '?')}.{getattr(old, '__qualname__', '?')}; "
                    "pass override=True to replace it"
                )
            _REGISTRY[name] = fn
        return fn

    return decorator


def _load_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    for mod in _BUILTIN_MODULES:
        importlib.import_module(mod)
    _builtins_loaded = True


def _import_reward(ref: str) -> RewardFn:
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise KeyError(f"bad reward reference {ref!r}: expected 'some.module:function'")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as e:
        raise KeyError(f"cannot import module {module_name!r} for reward {ref!r}: {e}") from e
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise KeyError(f"module {module_name!r} has no attribute {attr!r} (reward {ref!r})") from None
    if not callable(obj):
        raise KeyError(f"reward {ref!r} resolved to a non-callable {type(obj).__name__}")
    return obj


def get_reward(name: str) -> RewardFn:
    """Return the reward registered as ``name``.

    ``"pkg.module:function"`` is imported and registered under that exact string.
    Unknown names raise ``KeyError`` listing the known ones.
    """
    if not isinstance(name, str):
        raise KeyError(f"reward name must be a string, got {type(name).__name__}")
    with _LOCK:
        fn = _REGISTRY.get(name)
        if fn is not None:
            return fn
        if ":" in name:
            fn = _import_reward(name)
            _REGISTRY[name] = fn
            return fn
        _load_builtins()
        fn = _REGISTRY.get(name)
        if fn is not None:
            return fn
        raise KeyError(
            f"unknown reward {name!r}; known rewards: {', '.join(list_rewards())} "
            "(or use 'some.module:function')"
        )


def list_rewards() -> List[str]:
    """Sorted names of all registered rewards (built-ins included)."""
    with _LOCK:
        _load_builtins()
        return sorted(_REGISTRY)
