"""Per-token KL estimators (policy vs. reference) and entropy.

Estimators follow John Schulman's note "Approximating KL divergence" (2020). With tokens
sampled from the current policy ``pi`` and ``log_r = ref_logp - logp``:

- k1 = ``-log_r = logp - ref_logp``: unbiased for KL(pi || ref), high variance, can be < 0.
- k2 = ``0.5 * log_r^2``: biased, low variance, always >= 0.
- k3 = ``exp(log_r) - log_r - 1``: unbiased and always >= 0 (GRPO's choice, DeepSeekMath).

All take ``[N, T]`` tensors and return ``[N, T]`` without masking: values at padding
positions are whatever the inputs give there, so callers must mask them (e.g. with
``losses.masked_mean`` or ``aggregate``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from mmrft.algorithms.registry import KL_ESTIMATORS

__all__ = ["k1", "k2", "k3", "kl_penalty", "entropy_from_logits"]


def _clamp(x: Tensor, clamp: float | None) -> Tensor:
    return x if clamp is None else x.clamp(-clamp, clamp)


@KL_ESTIMATORS.register("k1")
def k1(logp: Tensor, ref_logp: Tensor, clamp: float | None = 10.0) -> Tensor:
    """k1 = ``logp - ref_logp`` (Schulman, "Approximating KL divergence"), clamped to
    ``[-clamp, clamp]`` when ``clamp`` is set. Shapes ``[N, T] -> [N, T]``."""
    return _clamp(logp - ref_logp, clamp)


@KL_ESTIMATORS.register("k2")
def k2(logp: Tensor, ref_logp: Tensor, clamp: float | None = 10.0) -> Tensor:
    """k2 = ``0.5 * (logp - ref_logp)^2`` (Schulman, "Approximating KL divergence"); the
    result is clamped to at most ``clamp`` when set. Shapes ``[N, T] -> [N, T]``."""
    return _clamp(0.5 * (logp - ref_logp) ** 2, clamp)


@KL_ESTIMATORS.register("k3")
def k3(logp: Tensor, ref_logp: Tensor, clamp: float | None = 10.0) -> Tensor:
    """k3 = ``exp(ref - logp) - (ref - logp) - 1`` (Schulman, "Approximating KL divergence";
    the GRPO KL term of DeepSeekMath, Shao et al. 2024).

    When ``clamp`` is set the log-ratio ``ref - logp`` is clamped to ``[-clamp, clamp]``
    before ``exp`` (prevents overflow to inf) and the result to at most ``clamp`` (bounds
    the penalty gradient on outlier tokens). ``clamp=None`` is the raw formula.
    Shapes ``[N, T] -> [N, T]``.
    """
    log_r = _clamp(ref_logp - logp, clamp)
    return _clamp(torch.exp(log_r) - log_r - 1.0, clamp)


# Aliases under the names used by verl / OpenRLHF configs.
KL_ESTIMATORS.add("kl", k1)
KL_ESTIMATORS.add("mse", k2)
KL_ESTIMATORS.add("low_var_kl", k3)


def kl_penalty(logp: Tensor, ref_logp: Tensor, kind: str = "k3", clamp: float | None = 10.0) -> Tensor:
    """Per-token KL(pi || ref) estimate of the given ``kind`` from ``KL_ESTIMATORS``.

    ``kind`` is one of ``k1`` (``logp - ref``), ``k2`` (``0.5 (logp - ref)^2``) or ``k3``
    (``exp(ref - logp) - (ref - logp) - 1``) from Schulman's "Approximating KL divergence"
    note (aliases ``kl``, ``mse``, ``low_var_kl``). ``clamp`` bounds the estimate to
    ``[-clamp, clamp]`` (and k3's log-ratio before ``exp``); ``None`` disables it.

    Args:
        logp: ``[N, T]`` log-probs of the sampled tokens under the trained policy.
        ref_logp: ``[N, T]`` log-probs under the reference policy (treated as constant).
    Returns:
        ``[N, T]`` unmasked per-token estimates.
    """
    if logp.shape != ref_logp.shape:
        raise ValueError(f"logp and ref_logp shapes differ: {tuple(logp.shape)} vs {tuple(ref_logp.shape)}")
    return KL_ESTIMATORS[kind](logp, ref_logp.detach(), clamp=clamp)


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy of ``softmax(logits)`` over the last dim: ``H = logsumexp(z) - sum_v p_v z_v``.

    Numerically stable for large logits (no explicit ``log(softmax)``), differentiable,
    and tolerant of ``-inf`` logits (masked vocabulary entries contribute 0).
    Half-precision inputs are computed and returned in float32.
    Shapes: ``[..., V] -> [...]``.
    """
    z = logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
    p = torch.softmax(z, dim=-1)
    # masked_fill (not multiply) so 0 * -inf cannot produce NaN values or gradients.
    z_finite = z.masked_fill(torch.isneginf(z), 0.0)
    return torch.logsumexp(z, dim=-1) - (p * z_finite).sum(-1)
