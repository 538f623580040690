"""Policy / value losses and loss aggregation.

Policy losses share the signature
``fn(logp[N,T], old_logp[N,T], advantages[N,T], mask[N,T], **options) -> (loss_mat[N,T], metrics)``
and are registered in ``POLICY_LOSSES``. ``loss_mat`` is the per-token loss (0 where
``mask == 0``); reducing it to a scalar is ``aggregate``'s job, with a mode registered in
``AGGREGATIONS``, so that token-, sequence- and Dr.GRPO-style normalisations combine with
any loss. ``metrics`` are Python floats over
valid tokens (0.0 when there are none).
"""

from __future__ import annotations

import torch
from torch import Tensor

from mmrft.algorithms.registry import AGGREGATIONS, register_aggregation, register_policy_loss

__all__ = [
    "masked_mean",
    "aggregation_denominators",
    "aggregate",
    "token_mean",
    "seq_mean_token_mean",
    "seq_mean_token_sum",
    "seq_mean_token_sum_norm",
    "ppo_clip",
    "gspo",
    "value_loss",
]

def _zero_like(x: Tensor) -> Tensor:
    return torch.zeros((), dtype=x.dtype, device=x.device)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` over positions where ``mask`` is true.

    ``sum(x * mask, dim) / max(sum(mask, dim), 1)``: an empty mask gives 0, not NaN, and
    values at masked positions (even inf/NaN) never leak into the result or its gradient.
    Shapes: ``x`` and ``mask`` broadcastable; result reduced over ``dim`` (all dims if None).
    """
    valid = mask.bool()
    xs = torch.where(valid, x, _zero_like(x))
    if dim is None:
        return xs.sum() / valid.sum().clamp(min=1).to(x.dtype)
    return xs.sum(dim) / valid.sum(dim).clamp(min=1).to(x.dtype)


def _masked_max(x: Tensor, valid: Tensor) -> float:
    return float(x[valid].max()) if bool(valid.any()) else 0.0


def aggregation_denominators(mask: Tensor) -> tuple[float, float]:
    """``(num_tokens, num_seqs)`` that ``aggregate`` uses by default for ``mask [N, T]``.

    ``num_tokens`` = number of valid tokens; ``num_seqs`` = number of rows with at least
    one valid token (empty completions carry no gradient and must not dilute the mean).
    Compute these on the whole batch and pass them to every micro-batch call.
    """
    valid = mask.bool()
    return float(valid.sum()), float(valid.any(dim=-1).sum())


def aggregate(
    loss_mat: Tensor,
    mask: Tensor,
    mode: str,
    *,
    num_tokens: float | None = None,
    num_seqs: float | None = None,
    max_len: float | None = None,
) -> Tensor:
    """Reduce a per-token loss ``[N, T]`` to a scalar with the aggregation mode registered as ``mode``
    (``AGGREGATIONS``; the built-in ones are below).

    Defaults: ``num_tokens`` / ``num_seqs`` from ``aggregation_denominators(mask)``,
    ``max_len = T``. Gradient accumulation: pass the *whole batch's* ``num_tokens`` and
    ``num_seqs`` and the same constant ``max_len`` to every micro-batch (split by rows);
    the sum of micro-batch losses then equals the whole-batch loss for every built-in mode.
    Zero valid tokens gives a differentiable 0 (``loss_mat.sum() * 0``), never NaN.
    """
    try:
        reduce = AGGREGATIONS[mode]
    except KeyError as e:
        raise ValueError(e.args[0]) from None
    if loss_mat.shape != mask.shape or loss_mat.dim() != 2:
        raise ValueError(f"loss_mat and mask must share a 2-D shape, got {tuple(loss_mat.shape)}, {tuple(mask.shape)}")
    valid = mask.bool()
    default_tokens, default_seqs = aggregation_denominators(valid)
    losses = torch.where(valid, loss_mat, _zero_like(loss_mat))
    if default_tokens == 0:
        return losses.sum() * 0
    return reduce(losses, valid, default_tokens if num_tokens is None else float(num_tokens),
                  default_seqs if num_seqs is None else float(num_seqs),
                  float(loss_mat.shape[-1]) if max_len is None else float(max_len))


def _positive(denom: float, mode: str) -> float:
    if denom <= 0:
        raise ValueError(f"aggregation denominator must be positive for mode {mode!r}, got {denom}")
    return denom


# With L_it the token losses (0 on invalid tokens) and |o_i| the valid length of row i:

@register_aggregation("token-mean")
def token_mean(losses: Tensor, valid: Tensor, num_tokens: float, num_seqs: float, max_len: float) -> Tensor:
    """DAPO (Yu et al. 2025, Sec. 3.3): ``sum_it L_it / num_tokens``, every token of the batch weighs the same."""
    return losses.sum() / _positive(num_tokens, "token-mean")


@register_aggregation("seq-mean-token-mean")
def seq_mean_token_mean(losses: Tensor, valid: Tensor, num_tokens: float, num_seqs: float, max_len: float) -> Tensor:
    """GRPO (Shao et al. 2024, Eq. 3): ``sum_i (sum_t L_it / |o_i|) / num_seqs``."""
    per_seq = losses.sum(-1) / valid.sum(-1).clamp(min=1).to(losses.dtype)
    return per_seq.sum() / _positive(num_seqs, "seq-mean-token-mean")


@register_aggregation("seq-mean-token-sum")
def seq_mean_token_sum(losses: Tensor, valid: Tensor, num_tokens: float, num_seqs: float, max_len: float) -> Tensor:
    """``sum_i sum_t L_it / num_seqs``: each completion's summed log-likelihood, one action (RLOO)."""
    return losses.sum() / _positive(num_seqs, "seq-mean-token-sum")


@register_aggregation("seq-mean-token-sum-norm")
def seq_mean_token_sum_norm(losses: Tensor, valid: Tensor, num_tokens: float, num_seqs: float,
                            max_len: float) -> Tensor:
    """Dr.GRPO (Liu et al. 2025): ``sum_it L_it / (num_seqs * max_len)`` with ``max_len`` a constant (e.g. the
    max response length), so no length bias enters."""
    return losses.sum() / _positive(num_seqs * max_len, "seq-mean-token-sum-norm")


def _clipped_surrogate(
    ratio: Tensor,
    advantages: Tensor,
    valid: Tensor,
    clip_low: float,
    clip_high: float,
    dual_clip: float | None,
) -> tuple[Tensor, dict[str, float]]:
    """PPO-clip surrogate on a (possibly sequence-level-valued) token ratio."""
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"dual_clip must be > 1.0, got {dual_clip}")
    clipped = ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    pg_unclipped = -advantages * ratio
    pg_clipped = -advantages * clipped
    loss = torch.maximum(pg_unclipped, pg_clipped)
    if dual_clip is not None:
        # Dual-clip (Ye et al. 2020): bound the loss by -A*c when A < 0 so a huge ratio on
        # a bad action cannot blow up the update.
        bounded = torch.minimum(loss, -advantages * dual_clip)
        loss = torch.where(advantages < 0, bounded, loss)
    loss = torch.where(valid, loss, _zero_like(loss))

    with torch.no_grad():
        n = max(int(valid.sum()), 1)
        pos, neg = advantages > 0, advantages < 0
        high = valid & pos & (ratio > 1.0 + clip_high)
        low = valid & neg & (ratio < 1.0 - clip_low)
        dual = valid & neg & (ratio > dual_clip) if dual_clip is not None else torch.zeros_like(valid)
        metrics = {
            "clip_frac_low": float(low.sum()) / n,
            "clip_frac_high": float(high.sum()) / n,
            "clip_frac_dual": float(dual.sum()) / n,
            "clip_frac": float((low | high | dual).sum()) / n,
            "ratio_mean": float(masked_mean(ratio, valid)),
            "ratio_max": _masked_max(ratio, valid),
            "ratio_min": -_masked_max(-ratio, valid),
        }
    return loss, metrics


def _check_loss_inputs(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor) -> Tensor:
    if logp.dim() != 2 or logp.shape != old_logp.shape or logp.shape != mask.shape:
        raise ValueError(
            f"logp, old_logp and mask must share a 2-D shape, got {tuple(logp.shape)}, "
            f"{tuple(old_logp.shape)}, {tuple(mask.shape)}"
        )
    if advantages.dim() == 1 and advantages.shape[0] == logp.shape[0]:
        advantages = advantages.unsqueeze(-1)
    if advantages.shape != logp.shape and advantages.shape != (logp.shape[0], 1):
        raise ValueError(f"advantages must be [N, T] or [N], got {tuple(advantages.shape)}")
    return advantages.detach().to(logp.dtype)


def _log_ratio(logp: Tensor, old_logp: Tensor, valid: Tensor, clamp: float | None) -> Tensor:
    """``logp - old_logp`` on valid tokens (``old_logp`` constant), 0 on padding (so garbage there, e.g. ``-inf``,
    cannot create NaN), clamped to ``±clamp`` (``None``: not clamped)."""
    log_ratio = torch.where(valid, logp - old_logp.detach(), _zero_like(logp))
    return log_ratio if clamp is None else log_ratio.clamp(-clamp, clamp)


@register_policy_loss("ppo_clip")
def ppo_clip(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float | None = None,
    log_ratio_clamp: float | None = 20.0,
) -> tuple[Tensor, dict[str, float]]:
    """Token-level PPO clipped surrogate (Schulman et al. 2017), as used by GRPO/DAPO.

    ``r_t = exp(logp_t - old_logp_t)``;
    ``L_t = max(-A_t r_t, -A_t clip(r_t, 1 - clip_low, 1 + clip_high))``.
    ``clip_high > clip_low`` is DAPO's clip-higher (Yu et al. 2025, e.g. 0.28).
    ``dual_clip = c > 1`` (Ye et al. 2020) further applies ``L_t = min(L_t, -A_t c)`` where
    ``A_t < 0``. The log-ratio is clamped to ``±log_ratio_clamp`` before ``exp`` so
    stale/extreme tokens stay finite (``None`` disables).

    Args:
        logp, old_logp: ``[N, T]`` log-probs of the sampled tokens under the current and
            behaviour policy (``old_logp`` treated as constant).
        advantages: ``[N, T]`` (or ``[N]``, broadcast over tokens), treated as constant.
        mask: ``[N, T]`` valid-token mask.
    Returns:
        ``(loss_mat [N, T], metrics)``; metrics: ``clip_frac_low`` (A<0, r<1-clip_low),
        ``clip_frac_high`` (A>0, r>1+clip_high), ``clip_frac_dual`` (A<0, r>c),
        ``clip_frac`` (any), ``ratio_mean``, ``ratio_max``, ``ratio_min``, ``approx_kl``
        (k3 estimate of KL(old || new)); fractions are over valid tokens.
    """
    adv = _check_loss_inputs(logp, old_logp, advantages, mask)
    valid = mask.bool()
    log_ratio = _log_ratio(logp, old_logp, valid, log_ratio_clamp)
    ratio = torch.exp(log_ratio)
    loss, metrics = _clipped_surrogate(ratio, adv.expand_as(ratio), valid, clip_low, clip_high, dual_clip)
    with torch.no_grad():
        metrics["approx_kl"] = float(masked_mean(ratio - 1.0 - log_ratio, valid))
    return loss, metrics


@register_policy_loss("gspo")
def gspo(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip_low: float = 3e-4,
    clip_high: float = 4e-4,
    dual_clip: float | None = None,
    log_ratio_clamp: float | None = 20.0,
) -> tuple[Tensor, dict[str, float]]:
    """GSPO sequence-level clipped objective, token form (Zheng et al. 2025).

    Sequence ratio ``s_i = exp(1/|o_i| sum_t (logp_it - old_logp_it))`` (length-normalised
    over valid tokens); token form ``s_it = sg[s_i] * exp(logp_it - sg[logp_it])`` whose
    value is ``s_i`` and whose gradient is ``s_i * grad logp_it``;
    ``L_it = max(-A_it s_it, -A_it clip(s_it, 1 - clip_low, 1 + clip_high))`` (paper
    defaults 3e-4 / 4e-4). With ``aggregate(..., "seq-mean-token-mean")`` and a
    per-sequence advantage this reproduces the paper's GSPO gradient exactly.
    Fully-masked rows give ``s_i = 1`` and zero loss. Shapes and metrics as ``ppo_clip``
    (ratio metrics describe ``s_i`` repeated over the valid tokens).
    """
    adv = _check_loss_inputs(logp, old_logp, advantages, mask)
    valid = mask.bool()
    log_ratio = _log_ratio(logp, old_logp, valid, None)
    seq_log_ratio = log_ratio.sum(-1) / valid.sum(-1).clamp(min=1).to(logp.dtype)
    seq_log_ratio = seq_log_ratio.detach()
    if log_ratio_clamp is not None:
        seq_log_ratio = seq_log_ratio.clamp(-log_ratio_clamp, log_ratio_clamp)
    logp_safe = torch.where(valid, logp, _zero_like(logp))
    ratio = torch.exp(seq_log_ratio.unsqueeze(-1) + logp_safe - logp_safe.detach())
    loss, metrics = _clipped_surrogate(ratio, adv.expand_as(ratio), valid, clip_low, clip_high, dual_clip)
    with torch.no_grad():
        s = seq_log_ratio
        has_tokens = valid.any(-1)
        metrics["approx_kl"] = float(masked_mean(s.exp() - 1.0 - s, has_tokens))
    return loss, metrics


def value_loss(
    values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    mask: Tensor,
    clip_range: float | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """PPO clipped value loss (Schulman et al. 2017; clipping as in OpenAI baselines).

    ``L_t = 0.5 * max((V_t - R_t)^2, (clip(V_t, V_old - c, V_old + c) - R_t)^2)``; without
    ``clip_range`` it is ``0.5 * (V_t - R_t)^2``. All inputs ``[N, T]``; ``old_values`` and
    ``returns`` are constants. Returns ``(loss_mat [N, T], metrics)`` with metrics
    ``vf_clip_frac`` (clipped branch strictly larger), ``values_mean``, ``returns_mean``,
    ``vf_mse`` over valid tokens.
    """
    if not (values.shape == old_values.shape == returns.shape == mask.shape):
        raise ValueError("values, old_values, returns and mask must share a shape")
    valid = mask.bool()
    returns = returns.detach()
    unclipped = (values - returns) ** 2
    if clip_range is not None:
        old = old_values.detach()
        v_clipped = old + (values - old).clamp(-clip_range, clip_range)
        clipped = (v_clipped - returns) ** 2
        loss = 0.5 * torch.maximum(unclipped, clipped)
    else:
        clipped = unclipped
        loss = 0.5 * unclipped
    loss = torch.where(valid, loss, _zero_like(loss))
    with torch.no_grad():
        n = max(int(valid.sum()), 1)
        metrics = {
            "vf_clip_frac": float((valid & (clipped > unclipped)).sum()) / n,
            "values_mean": float(masked_mean(values, valid)),
            "returns_mean": float(masked_mean(returns, valid)),
            "vf_mse": float(masked_mean(unclipped, valid)),
        }
    return loss, metrics
