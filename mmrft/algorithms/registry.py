"""The registries of the RL math: advantage estimators, policy losses, loss aggregations, KL estimators and
rollout corrections.

Each is a `mmrft.registry.Registry` (a read-only mapping: `POLICY_LOSSES["gspo"]`); the trainer resolves the
config's names through them, so a user's module named in `imports:` adds an entry with a decorator and selects it
by name without touching the trainer. `options_for` decides which keyword options a registered function receives.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from mmrft.registry import Registry

F = TypeVar("F", bound=Callable[..., object])

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "POLICY_LOSSES",
    "AGGREGATIONS",
    "KL_ESTIMATORS",
    "ROLLOUT_CORRECTIONS",
    "register_advantage_estimator",
    "register_policy_loss",
    "register_aggregation",
    "register_rollout_correction",
    "options_for",
]

ADVANTAGE_ESTIMATORS: Registry[Callable[..., Any]] = Registry("advantage estimator")
POLICY_LOSSES: Registry[Callable[..., Any]] = Registry("policy loss")
AGGREGATIONS: Registry[Callable[..., Any]] = Registry("loss aggregation mode")
KL_ESTIMATORS: Registry[Callable[..., Any]] = Registry("KL estimator")
ROLLOUT_CORRECTIONS: Registry[Callable[..., Any]] = Registry("rollout correction")


def register_advantage_estimator(name: str, *, override: bool = False, needs_groups: bool = False,
                                 needs_critic: bool = False, per_component: bool = False) -> Callable[[F], F]:
    """Decorator: register ``fn(rewards[N], group_ids[N], mask[N, T] | None, **options) -> [N] | [N, T]``.

    ``needs_groups``: the estimator compares the completions of one prompt (the trainer then requires
    ``rollout.group_size >= 2``). ``needs_critic``: a value-model estimator like ``gae``
    (``fn(token_rewards, values, mask, **options) -> (advantages, returns)``); the trainer builds a critic for it.
    ``per_component``: a multi-reward estimator like ``gdpo``, called with the rewards one column per entry of
    ``rewards.weights`` (``[N, K]``, unweighted) and ``weights=[K]`` instead of their weighted sum.
    """
    return ADVANTAGE_ESTIMATORS.register(name, override=override, needs_groups=needs_groups,
                                         needs_critic=needs_critic, per_component=per_component)


def register_policy_loss(name: str, *, override: bool = False) -> Callable[[F], F]:
    """Decorator: register ``fn(logp, old_logp, advantages, mask, **options) -> (loss_mat[N, T], metrics)``."""
    return POLICY_LOSSES.register(name, override=override)


def register_aggregation(name: str, *, override: bool = False) -> Callable[[F], F]:
    """Decorator: register ``fn(losses[N, T], valid[N, T], num_tokens, num_seqs, max_len) -> scalar`` (``losses``
    already 0 where ``valid`` is false; see ``mmrft.algorithms.aggregate``)."""
    return AGGREGATIONS.register(name, override=override)


def register_rollout_correction(name: str, *, override: bool = False) -> Callable[[F], F]:
    """Decorator: register ``fn(log_ratio[N, T], mask[N, T], **options) -> weights[N, T]``, the per-token factor the
    policy loss is multiplied by given ``log_ratio = trainer_logp - sampler_logp`` (see
    ``mmrft.algorithms.correction``)."""
    return ROLLOUT_CORRECTIONS.register(name, override=override)


def options_for(fn: Callable[..., Any], knobs: Mapping[str, Any], extra: Mapping[str, Any] | None = None,
                what: str = "options") -> dict[str, Any]:
    """The keyword options to call a registered `fn` with: each keyword-only parameter of `fn` named like one of
    `knobs` (e.g. the `algorithm.*` settings `clip_low`, `dual_clip`) gets that knob's value, then `extra` (e.g.
    `algorithm.policy_loss_options`) adds or overrides options. A key of `extra` that `fn` does not accept raises
    `KeyError` naming it, `what` and the accepted options (unless `fn` takes `**kwargs`)."""
    params = inspect.signature(fn).parameters
    keyword = {n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    out = {n: knobs[n] for n in keyword if n in knobs}
    for key, value in (extra or {}).items():
        if key not in keyword and not takes_any:
            accepted = ", ".join(sorted(keyword)) or "none"
            raise KeyError(f"{what}: {getattr(fn, '__name__', fn)!s} has no option {key!r} (accepted: {accepted})")
        out[key] = value
    return out
