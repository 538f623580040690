"""Rollout correction: the sampler that drew the completions is not exactly the policy being trained.

The rollout engine's log-probs of the sampled tokens (``sampler_logp``, e.g. vLLM's bf16 kernels, or a policy one
update stale) differ from the trainer's (``trainer_logp``, the policy before this step's update, the PPO "old"
policy). The policy-gradient estimate is on-policy for the sampler, not for the trainer; importance weights
``rho_t = pi_trainer(y_t | .) / pi_sampler(y_t | .)`` move it back. Each registered correction maps the per-token
log-ratio ``log rho [N, T]`` (0 where ``mask`` is 0) to a constant per-token weight ``w [N, T]`` that multiplies
the policy loss (``L_t <- w_t L_t``; the aggregation's denominators are unchanged, so a masked token simply drops
out, as in TRL and OpenRLHF). Signature:
``fn(log_ratio[N, T], mask[N, T], **options) -> weights[N, T]`` (0 where ``mask`` is 0).

Built in (select with ``rollout.correction``; options in ``rollout.correction_options``):

* ``none``: ``w = 1``.
* ``tis``: token-level truncated importance sampling, ``w_t = min(rho_t, cap)`` (Yao et al. 2025, "Your efficient
  RL framework secretly brings you off-policy RL training", C = 2; TRL ``token_truncate``).
* ``seq_tis``: sequence-level, ``w_i = min(prod_t rho_it, cap)`` on every token of row i (TRL ``sequence_truncate``).
* ``token_mask`` / ``seq_mask``: ``w = rho`` where ``rho <= cap``, else 0 (TRL ``token_mask`` / ``sequence_mask``).
* ``icepop``: ``w_t = rho_t`` where ``low <= rho_t <= high``, else 0 (IcePop, Ling team 2025, "Every step evolves:
  scaling RL for trillion-scale thinking model", alpha = 0.5, beta = 5; OpenRLHF ``icepop``).
* ``seq_mask_tis``: a row whose geometric-mean ratio ``exp(mean_t log rho_it)`` lies outside ``[low, high]`` is
  dropped, the others get token TIS ``w_t = min(rho_t, high)`` (OpenRLHF ``seq-mask-tis``, its band [0.5, 5]).

Log-ratios are clamped to ``+-log_ratio_clamp`` (20) before ``exp``, so a sequence's summed ratio stays finite.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mmrft.algorithms.registry import register_rollout_correction

__all__ = ["sampler_log_ratio", "correction_metrics", "none", "tis", "seq_tis", "token_mask", "seq_mask", "icepop",
           "seq_mask_tis"]

LOG_RATIO_CLAMP = 20.0


def sampler_log_ratio(trainer_logp: Tensor, sampler_logp: Tensor, mask: Tensor) -> Tensor:
    """``log rho = trainer_logp - sampler_logp`` on the valid tokens, 0 elsewhere and where the sampler gave no
    log-prob (NaN or +-inf: e.g. a stop token an engine appended itself). Constant (detached). Shapes ``[N, T]``."""
    diff = (trainer_logp.detach() - sampler_logp.to(trainer_logp.dtype)).float()
    ok = mask.bool() & torch.isfinite(diff)
    return torch.where(ok, diff, torch.zeros_like(diff))


def _ratio(log_ratio: Tensor) -> Tensor:
    return log_ratio.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP).exp()


def _seq_log_ratio(log_ratio: Tensor, mask: Tensor, mean: bool = False) -> Tensor:
    """Per row, ``sum_t log rho_t`` (``mean``: divided by the row's valid tokens), as ``[N, 1]``."""
    total = (log_ratio * mask).sum(-1, keepdim=True)
    if mean:
        total = total / mask.sum(-1, keepdim=True).clamp(min=1)
    return total


def _on_valid(w: Tensor, mask: Tensor) -> Tensor:
    return torch.where(mask.bool(), w.expand_as(mask).to(torch.float32), torch.zeros_like(mask, dtype=torch.float32))


def _positive(**values: float) -> None:
    for name, v in values.items():
        if not v > 0:
            raise ValueError(f"rollout.correction_options.{name} must be > 0, got {v}")


@register_rollout_correction("none")
def none(log_ratio: Tensor, mask: Tensor) -> Tensor:
    """No correction: ``w = 1`` on valid tokens."""
    return _on_valid(torch.ones_like(log_ratio), mask)


@register_rollout_correction("tis")
def tis(log_ratio: Tensor, mask: Tensor, *, cap: float = 2.0) -> Tensor:
    """Token TIS: ``w_t = min(rho_t, cap)``."""
    _positive(cap=cap)
    return _on_valid(_ratio(log_ratio).clamp(max=cap), mask)


@register_rollout_correction("seq_tis")
def seq_tis(log_ratio: Tensor, mask: Tensor, *, cap: float = 3.0) -> Tensor:
    """Sequence TIS: ``w_i = min(exp(sum_t log rho_it), cap)`` on each valid token of row i."""
    _positive(cap=cap)
    return _on_valid(_ratio(_seq_log_ratio(log_ratio, mask)).clamp(max=cap), mask)


@register_rollout_correction("token_mask")
def token_mask(log_ratio: Tensor, mask: Tensor, *, cap: float = 3.0) -> Tensor:
    """Token masking: ``w_t = rho_t if rho_t <= cap else 0``."""
    _positive(cap=cap)
    rho = _ratio(log_ratio)
    return _on_valid(torch.where(rho <= cap, rho, torch.zeros_like(rho)), mask)


@register_rollout_correction("seq_mask")
def seq_mask(log_ratio: Tensor, mask: Tensor, *, cap: float = 3.0) -> Tensor:
    """Sequence masking: ``w_i = rho_i if rho_i <= cap else 0`` with ``rho_i = prod_t rho_it``."""
    _positive(cap=cap)
    rho = _ratio(_seq_log_ratio(log_ratio, mask))
    return _on_valid(torch.where(rho <= cap, rho, torch.zeros_like(rho)), mask)


@register_rollout_correction("icepop")
def icepop(log_ratio: Tensor, mask: Tensor, *, low: float = 0.5, high: float = 5.0) -> Tensor:
    """IcePop: ``w_t = rho_t if low <= rho_t <= high else 0``: tokens the two engines disagree on get no gradient."""
    _positive(low=low, high=high)
    if low > high:
        raise ValueError(f"rollout.correction_options: low ({low}) must not exceed high ({high})")
    rho = _ratio(log_ratio)
    return _on_valid(torch.where((rho >= low) & (rho <= high), rho, torch.zeros_like(rho)), mask)


@register_rollout_correction("seq_mask_tis")
def seq_mask_tis(log_ratio: Tensor, mask: Tensor, *, low: float = 0.5, high: float = 5.0) -> Tensor:
    """Sequence mask + token TIS: rows whose geometric-mean ratio ``exp(mean_t log rho_it)`` is outside
    ``[low, high]`` get ``w = 0``; in the others ``w_t = min(rho_t, high)``."""
    _positive(low=low, high=high)
    if low > high:
        raise ValueError(f"rollout.correction_options: low ({low}) must not exceed high ({high})")
    geo = _ratio(_seq_log_ratio(log_ratio, mask, mean=True))
    keep = (geo >= low) & (geo <= high)
    return _on_valid(torch.where(keep, _ratio(log_ratio).clamp(max=high), torch.zeros_like(log_ratio)), mask)


@torch.no_grad()
def correction_metrics(log_ratio: Tensor, weights: Tensor, mask: Tensor) -> dict[str, float]:
    """How far the sampler is from the trainer and what the correction did, over valid tokens:
    ``mismatch_kl`` (k3 estimate of KL(sampler || trainer), ``E[rho - 1 - log rho]`` over the sampled tokens),
    ``mismatch_logp_abs`` (mean ``|trainer_logp - sampler_logp|``), ``is_weight`` (mean weight), ``is_masked``
    (share of tokens with weight 0)."""
    valid = mask.bool()
    n = max(int(valid.sum()), 1)
    lr = log_ratio.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    return {
        "mismatch_kl": float(((lr.exp() - 1 - lr) * valid).sum()) / n,
        "mismatch_logp_abs": float((lr.abs() * valid).sum()) / n,
        "is_weight": float((weights * valid).sum()) / n,
        "is_masked": float((valid & (weights == 0)).sum()) / n,
    }
