"""Policy losses beyond PPO-clip and GSPO: CISPO, SAPO, GMPO, GPG and VESPO.

Every loss here has the signature of ``mmrft.algorithms.losses`` (``fn(logp[N, T], old_logp[N, T],
advantages[N, T] | [N], mask[N, T], **options) -> (loss_mat[N, T], metrics)``), returns 0 on masked tokens and
leaves the reduction to a scalar to ``aggregate``. Options that the paper fixes are keyword defaults here; a loss
whose keyword is named like an ``algorithm.*`` knob (``clip_low``, ``clip_high``) receives that knob, so a preset sets
them. Log-ratios are zeroed on padding before any arithmetic (``-inf`` there never makes NaN) and clamped to
``±log_ratio_clamp`` before ``exp`` so stale tokens stay finite.

The clip-by-covariance losses of Cui et al. 2025 live in ``mmrft.algorithms.entropy_losses``. Two names of TRL's
``loss_type`` are not losses here: ``luspo`` is ``gspo`` aggregated with ``seq-mean-token-sum`` (the ``luspo``
preset), and ``bnpo`` in TRL is a token mean over the local batch (mmrft's ``token-mean``), while the BNPO paper's
Beta normalisation is an advantage estimator (``mmrft.algorithms.multi_reward.bnpo``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mmrft.algorithms.losses import _check_loss_inputs, _log_ratio, _masked_max, _zero_like, masked_mean
from mmrft.algorithms.registry import register_policy_loss

__all__ = ["cispo", "sapo", "gmpo", "gpg", "vespo"]


def _ratio_metrics(log_ratio: Tensor, valid: Tensor) -> dict[str, float]:
    """Token importance-ratio range and the k3 estimate of KL(old || new) over valid tokens, as ``ppo_clip``."""
    with torch.no_grad():
        log_ratio = log_ratio.detach()
        ratio = log_ratio.exp()
        return {
            "ratio_mean": float(masked_mean(ratio, valid)),
            "ratio_max": _masked_max(ratio, valid),
            "ratio_min": -_masked_max(-ratio, valid),
            "approx_kl": float(masked_mean(ratio - 1.0 - log_ratio, valid)),
        }


def _fraction(flags: Tensor, valid: Tensor) -> float:
    return float((flags & valid).sum()) / max(int(valid.sum()), 1)


@register_policy_loss("cispo")
def cispo(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip_low: float = 1.0,
    clip_high: float = 4.0,
    log_ratio_clamp: float | None = 20.0,
) -> tuple[Tensor, dict[str, float]]:
    """CISPO, clipped IS-weight policy optimization (MiniMax 2025, "MiniMax-M1: Scaling Test-Time Compute
    Efficiently with Lightning Attention", arXiv:2506.13585, Sec. 3.1).

    ``L_t = -sg(clip(r_t, 1 - clip_low, 1 + clip_high)) * A_t * logp_t`` with ``r_t = exp(logp_t - old_logp_t)``:
    the clipped importance weight is a constant, so the gradient ``-w_t A_t grad logp_t`` flows through ``logp``
    only and no token's gradient is ever dropped (PPO-clip zeroes it outside the band). The paper sets no lower
    bound ("a large epsilon_low"): ``clip_low >= 1`` makes the bound ``<= 0``, which a ratio never crosses (the
    default). ``clip_high = 4`` caps the weight at 5, TRL's ``epsilon_high=5.0`` for ``loss_type="cispo"`` (the
    ScaleRL paper's ``epsilon_max``; TRL clamps ``min(r, epsilon_high)``, verl ``clip(r, 1 - low, 1 + high)``, the
    same weight). The paper's objective normalises by all tokens of the batch: aggregate with ``token-mean``.

    Metrics: ``clip_frac_high`` / ``clip_frac_low`` (weights capped at ``1 + clip_high`` / raised to
    ``1 - clip_low``, any advantage sign: the weight is truncated either way), ``clip_frac``, ratio range,
    ``approx_kl``.
    """
    adv = _check_loss_inputs(logp, old_logp, advantages, mask)
    valid = mask.bool()
    log_ratio = _log_ratio(logp, old_logp, valid, log_ratio_clamp)
    ratio = log_ratio.detach().exp()
    weight = ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    logp_safe = torch.where(valid, logp, _zero_like(logp))
    loss = -(weight * adv * logp_safe)
    loss = torch.where(valid, loss, _zero_like(loss))
    high, low = ratio > 1.0 + clip_high, ratio < 1.0 - clip_low
    metrics = {
        "clip_frac_low": _fraction(low, valid),
        "clip_frac_high": _fraction(high, valid),
        "clip_frac": _fraction(low | high, valid),
        **_ratio_metrics(log_ratio, valid),
    }
    return loss, metrics


@register_policy_loss("sapo")
def sapo(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    tau_pos: float = 1.0,
    tau_neg: float = 1.05,
    log_ratio_clamp: float | None = 20.0,
) -> tuple[Tensor, dict[str, float]]:
    """SAPO, soft adaptive policy optimization (Gao, Zheng, Chen, Dang, Liu, Yu, Yang, Bai, Zhou, Lin 2025, Qwen
    team, "Soft Adaptive Policy Optimization", arXiv:2511.20347).

    A smooth gate replaces the hard clip: ``L_t = -f(r_t; tau_t) * A_t`` with
    ``f(r; tau) = sigmoid(tau (r - 1)) * 4 / tau`` and ``tau_t = tau_pos`` where ``A_t > 0``, else ``tau_neg``
    (the paper's defaults 1.0 and 1.05, as in verl's ``compute_policy_loss_sapo`` and TRL's ``sapo_temperature_*``).
    ``df/dr = 4 s (1 - s)`` with ``s = sigmoid(tau (r - 1))``, 1 at ``r = 1``: on-policy the gradient is the plain
    policy gradient ``-A grad logp``; off-policy it fades smoothly (faster for negative advantages, ``tau_neg >
    tau_pos``). TRL and verl aggregate SAPO per sequence: use ``seq-mean-token-mean``.

    Metrics: ratio range, ``approx_kl``, ``gate_weight_mean`` (mean of ``4 s (1 - s)``, the factor on the
    unclipped gradient ``-A r grad logp``; 1 on-policy).
    """
    if tau_pos <= 0 or tau_neg <= 0:
        raise ValueError(f"sapo temperatures must be positive, got tau_pos={tau_pos}, tau_neg={tau_neg}")
    adv = _check_loss_inputs(logp, old_logp, advantages, mask)
    valid = mask.bool()
    log_ratio = _log_ratio(logp, old_logp, valid, log_ratio_clamp)
    ratio = torch.exp(log_ratio)
    pos = (adv > 0).expand_as(ratio)
    tau = torch.where(pos, torch.full_like(ratio, tau_pos), torch.full_like(ratio, tau_neg))
    s = torch.sigmoid(tau * (ratio - 1.0))
    loss = -(s * (4.0 / tau)) * adv
    loss = torch.where(valid, loss, _zero_like(loss))
    metrics = _ratio_metrics(log_ratio, valid)
    with torch.no_grad():
        metrics["gate_weight_mean"] = float(masked_mean(4.0 * s * (1.0 - s), valid))
    return loss, metrics


@register_policy_loss("gmpo")
def gmpo(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip_low: float = 0.4,
    clip_high: float = 0.4,
    log_ratio_clamp: float | None = 20.0,
) -> tuple[Tensor, dict[str, float]]:
    """GMPO, geometric-mean policy optimization (Zhao, Liu, Liu, Chen, Wu, Hao, Lv, Huang, Cui, Ye et al.
    2025, "Geometric-Mean Policy Optimization", arXiv:2507.20673; verl's ``geo_mean`` loss).

    Per sequence, the geometric mean of the token ratios, each clipped in log space one-sidedly by the advantage
    sign (PPO's trust region) *before* the mean: with ``l_t = logp_t - old_logp_t``,
    ``c_t = min(l_t, clip(l_t, -clip_low, clip_high))`` where ``A_t > 0``, ``max(...)`` otherwise,
    ``s_i = exp(1/|o_i| sum_t c_t)`` and ``L_i = -A_i s_i`` with ``A_i`` the mean advantage over the sequence's
    valid tokens (as verl; equal to the outcome advantage). The default clip range ``(e^-0.4, e^0.4)`` is the
    paper's. An asymmetric range is applied as in verl and TRL, ``l`` clipped to ``[-clip_low, clip_high]`` for
    either sign (PPO's meaning of the two knobs); the paper's ``clip(w^sgn(A), e1, e2)`` would swap the bounds
    where ``A < 0``, which no published setting exercises (the authors' code clips symmetrically).
    Gradient: ``-A_i s_i / |o_i| * grad logp_t`` on tokens whose ``c_t`` is unclipped, 0 on clipped ones.

    Token form: ``loss_mat[i, t] = L_i`` on every valid token of row ``i``, so ``aggregate(...,
    "seq-mean-token-mean")`` gives the paper's ``1/G sum_i L_i`` exactly (value and gradient). Other modes weight
    a sequence by its length. Fully masked rows give 0.

    Metrics: ``clip_frac_high`` (``A > 0``, ``l > clip_high``), ``clip_frac_low`` (``A < 0``, ``l < -clip_low``),
    ``clip_frac``, token ratio range, ``approx_kl``, ``seq_ratio_mean`` (mean ``s_i`` over non-empty rows).
    """
    adv = _check_loss_inputs(logp, old_logp, advantages, mask)
    valid = mask.bool()
    adv_tok = adv.expand_as(logp)
    log_ratio = _log_ratio(logp, old_logp, valid, log_ratio_clamp)
    clamped = log_ratio.clamp(-clip_low, clip_high)
    clipped = torch.where(adv_tok > 0, torch.minimum(log_ratio, clamped), torch.maximum(log_ratio, clamped))
    clipped = torch.where(valid, clipped, _zero_like(clipped))
    lengths = valid.sum(-1).clamp(min=1).to(logp.dtype)
    seq_ratio = torch.exp(clipped.sum(-1) / lengths)
    seq_adv = torch.where(valid, adv_tok, _zero_like(adv_tok)).sum(-1) / lengths
    seq_loss = -seq_adv * seq_ratio
    loss = torch.where(valid, seq_loss.unsqueeze(-1).expand_as(logp), _zero_like(logp))
    with torch.no_grad():
        high = (adv_tok > 0) & (log_ratio > clip_high)
        low = (adv_tok < 0) & (log_ratio < -clip_low)
        metrics = {
            "clip_frac_low": _fraction(low, valid),
            "clip_frac_high": _fraction(high, valid),
            "clip_frac": _fraction(low | high, valid),
            **_ratio_metrics(log_ratio, valid),
            "seq_ratio_mean": float(masked_mean(seq_ratio.detach(), valid.any(-1))),
        }
    return loss, metrics


@register_policy_loss("gpg")
def gpg(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor) -> tuple[Tensor, dict[str, float]]:
    """GPG, group policy gradient (Chu, Huang, Zhang, Wei, Wang 2025, "GPG: A Simple and Strong Reinforcement
    Learning Baseline for Model Reasoning", arXiv:2504.02546; verl's ``compute_policy_loss_gpg``).

    The plain policy gradient, no surrogate: ``L_t = -A_t * logp_t`` (no ratio, no clip; ``old_logp`` only feeds
    the metrics). It is meant on-policy, one update per batch; the paper's advantage is the group-centred reward
    (``dr_grpo``) rescaled by ``B / (B - M)`` with ``M`` the zero-advantage samples, which the ``gpg`` preset gets
    by dropping zero-variance groups (see mmrft/presets/second_wave.py). Metrics: ratio range and ``approx_kl`` (0 and 1s
    on-policy).
    """
    adv = _check_loss_inputs(logp, old_logp, advantages, mask)
    valid = mask.bool()
    logp_safe = torch.where(valid, logp, _zero_like(logp))
    loss = torch.where(valid, -adv * logp_safe, _zero_like(logp))
    return loss, _ratio_metrics(_log_ratio(logp, old_logp, valid, 20.0), valid)


@register_policy_loss("vespo")
def vespo(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    k_pos: float = 2.0,
    lambda_pos: float = 3.0,
    k_neg: float = 3.0,
    lambda_neg: float = 2.0,
) -> tuple[Tensor, dict[str, float]]:
    """VESPO, variational sequence-level soft policy optimization (arXiv:2602.10693, 2026; TRL's
    ``loss_type="vespo"``, ``GRPOTrainer.get_gamma_weights``).

    A detached Gamma-shaped weight of the *sequence* importance ratio ``W_i = prod_t r_it`` (the product, not the
    geometric mean) scales a REINFORCE term: ``L_it = -sg(phi(W_i)) * A_it * logp_it`` with
    ``phi(W) = W^k exp(lambda (1 - W))`` (``phi(1) = 1``: on-policy this is ``-A logp``), ``(k, lambda) =
    (k_pos, lambda_pos)`` where ``A >= 0`` and ``(k_neg, lambda_neg)`` otherwise; defaults 2, 3, 3, 2 are TRL's
    (the paper's c1, c2 of Sec. 3.4). As TRL: token log-ratios clamped to ``±20``, ``log W`` to
    ``[log 1e-8, 20]``, ``lambda >= 1e-4``, a non-finite ``phi`` set to 0; TRL aggregates with the global token
    mean (``token-mean``). With ``[N, T]`` advantages the sign is taken per token.

    Metrics: ``phi_mean`` (over valid tokens), token ratio range, ``approx_kl``.
    """
    adv = _check_loss_inputs(logp, old_logp, advantages, mask)
    valid = mask.bool()
    log_ratio = _log_ratio(logp, old_logp, valid, 20.0)
    with torch.no_grad():
        log_w = log_ratio.sum(-1, keepdim=True).clamp(math.log(1e-8), 20.0)
        nonneg = (adv >= 0).expand_as(logp)
        k = torch.where(nonneg, torch.full_like(logp, k_pos), torch.full_like(logp, k_neg))
        lam = torch.where(nonneg, torch.full_like(logp, lambda_pos), torch.full_like(logp, lambda_neg)).clamp(min=1e-4)
        phi = torch.exp(lam + k * log_w - lam * log_w.exp()).nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
    logp_safe = torch.where(valid, logp, _zero_like(logp))
    loss = torch.where(valid, -phi * adv * logp_safe, _zero_like(logp))
    metrics = {"phi_mean": float(masked_mean(phi, valid)), **_ratio_metrics(log_ratio, valid)}
    return loss, metrics
