"""Clip-Cov and KL-Cov: PPO-family losses that restrain the tokens driving entropy collapse.

Cui, Zhang, Chen, Yuan, Wang, Zuo, Li, Fan, Chen, Chen et al. 2025, "The Entropy Mechanism of Reinforcement
Learning for Reasoning Language Models" (arXiv:2505.22617): the entropy change of a softmax policy follows the
covariance between a token's log-probability and its advantage, so both methods act on the few tokens with the
largest centred product ``cov_t = (A_t - mean(A)) * (logp_t - mean(logp))`` (means over the valid tokens of the
call). Semantics and defaults follow verl's ``compute_policy_loss_clip_cov`` / ``compute_policy_loss_kl_cov``
(verl/trainer/ppo/core_algos.py), ported from the authors' code. The token fractions are taken per call, i.e.
per micro-batch, as in verl. Signature as every policy loss (``mmrft.algorithms.losses``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from mmrft.algorithms.losses import _check_loss_inputs, _clipped_surrogate, _zero_like, masked_mean
from mmrft.algorithms.policy_losses import _log_ratio, _ratio_metrics
from mmrft.algorithms.registry import register_policy_loss

__all__ = ["clip_cov", "kl_cov", "centered_covariance"]


def centered_covariance(logp: Tensor, advantages: Tensor, valid: Tensor) -> Tensor:
    """``(A_t - mean(A)) * (logp_t - mean(logp))`` per token, means over the valid tokens; 0 on padding.
    No gradient (it only selects tokens)."""
    with torch.no_grad():
        logp = torch.where(valid, logp.detach(), _zero_like(logp))
        adv = torch.where(valid, advantages.detach(), _zero_like(advantages))
        cov = (adv - masked_mean(adv, valid)) * (logp - masked_mean(logp, valid))
        return torch.where(valid, cov, _zero_like(cov))


@register_policy_loss("clip_cov")
def clip_cov(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float | None = None,
    clip_cov_ratio: float = 2e-4,
    clip_cov_lb: float = 1.0,
    clip_cov_ub: float = 5.0,
    log_ratio_clamp: float | None = 20.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Clip-Cov (Cui et al. 2025, Sec. 4): PPO-clip, plus the gradient of a few random high-covariance tokens cut.

    ``L_t = max(-A_t r_t, -A_t clip(r_t, 1 - clip_low, 1 + clip_high))`` (as ``ppo_clip``, with ``dual_clip``)
    times ``corr_t``, where ``corr_t = 0`` for ``max(1, int(clip_cov_ratio * n_valid))`` tokens drawn at random
    (``generator``) among the valid tokens that PPO's clip did not already clip and whose ``cov_t`` lies strictly
    between ``clip_cov_lb`` and ``clip_cov_ub`` (all of them if fewer), 1 elsewhere. As in verl the loss of a cut
    token is multiplied by 0, so both its value and gradient vanish. Defaults 2e-4, 1, 5 are the paper's and
    verl's; the authors' recipe pairs them with ``clip_low = clip_high = 1`` (see the ``clip_cov`` preset).

    Metrics: those of ``ppo_clip`` (the PPO clip fractions, ratio range, ``approx_kl``) and ``cov_clip_frac``,
    the share of valid tokens cut for their covariance.
    """
    if clip_cov_ratio <= 0:
        raise ValueError(f"clip_cov_ratio must be > 0, got {clip_cov_ratio}")
    adv = _check_loss_inputs(logp, old_logp, advantages, mask)
    valid = mask.bool()
    log_ratio = _log_ratio(logp, old_logp, valid, log_ratio_clamp)
    ratio = torch.exp(log_ratio)
    adv_tok = adv.expand_as(ratio)
    loss, metrics = _clipped_surrogate(ratio, adv_tok, valid, clip_low, clip_high, dual_clip)
    with torch.no_grad():
        r = ratio.detach()
        ppo_clipped = -adv_tok * r.clamp(1.0 - clip_low, 1.0 + clip_high) > -adv_tok * r
        cov = centered_covariance(logp, adv_tok, valid)
        band = valid & ~ppo_clipped & (cov > clip_cov_lb) & (cov < clip_cov_ub)
        candidates = band.nonzero()
        n_cut = min(max(int(clip_cov_ratio * int(valid.sum())), 1), len(candidates))
        corr = torch.ones_like(loss)
        if n_cut > 0:
            device = generator.device if generator is not None else "cpu"
            pick = torch.randperm(len(candidates), generator=generator, device=device)[:n_cut].to(candidates.device)
            rows, cols = candidates[pick].unbind(-1)
            corr[rows, cols] = 0.0
    loss = loss * corr
    metrics["cov_clip_frac"] = n_cut / max(int(valid.sum()), 1)
    metrics["approx_kl"] = _ratio_metrics(log_ratio, valid)["approx_kl"]
    return loss, metrics


@register_policy_loss("kl_cov")
def kl_cov(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    kl_cov_ratio: float = 2e-3,
    ppo_kl_coef: float = 1.0,
    log_ratio_clamp: float | None = 20.0,
) -> tuple[Tensor, dict[str, float]]:
    """KL-Cov (Cui et al. 2025, Sec. 4): an unclipped policy gradient with a KL penalty on the top-covariance tokens.

    ``L_t = -A_t r_t + ppo_kl_coef * |logp_t - old_logp_t|`` on the ``max(1, int(kl_cov_ratio * n_valid))`` valid
    tokens with the largest ``cov_t``, ``L_t = -A_t r_t`` on the others (no ratio clipping at all, as in verl).
    ``|log r|`` has zero gradient on-policy, so the penalty needs several updates per rollout batch. Defaults:
    ``ppo_kl_coef = 1`` and ``kl_cov_ratio = 2e-3`` are the paper's / its recipe's for Qwen2.5-7B (2e-4 for 32B;
    verl's config default is 2e-4 with coefficient 0.1, its docstring says 1). Ties in ``cov`` go to ``topk``.

    Metrics: ``kl_cov_frac`` (share of valid tokens penalised), ``abs_log_ratio_mean`` (verl's ``ppo_kl`` for this
    loss), token ratio range, ``approx_kl``.
    """
    if kl_cov_ratio <= 0:
        raise ValueError(f"kl_cov_ratio must be > 0, got {kl_cov_ratio}")
    adv = _check_loss_inputs(logp, old_logp, advantages, mask)
    valid = mask.bool()
    log_ratio = _log_ratio(logp, old_logp, valid, log_ratio_clamp)
    ratio = torch.exp(log_ratio)
    adv_tok = adv.expand_as(ratio)
    n_valid = int(valid.sum())
    with torch.no_grad():
        selected = torch.zeros(valid.numel(), dtype=torch.bool, device=valid.device)
        if n_valid > 0:
            cov = centered_covariance(logp, adv_tok, valid)
            k = max(1, int(n_valid * kl_cov_ratio))
            flat = torch.where(valid, cov, torch.full_like(cov, float("-inf"))).flatten()
            selected[torch.topk(flat, k).indices] = True
        selected = selected.view(valid.shape)
    loss = -adv_tok * ratio + ppo_kl_coef * log_ratio.abs() * selected.to(ratio.dtype)
    loss = torch.where(valid, loss, _zero_like(loss))
    metrics = {
        "kl_cov_frac": float(selected.sum()) / max(n_valid, 1),
        "abs_log_ratio_mean": float(masked_mean(log_ratio.detach().abs(), valid)),
        **_ratio_metrics(log_ratio, valid),
    }
    return loss, metrics
