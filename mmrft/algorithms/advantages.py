"""Advantage estimators, registered in ``ADVANTAGE_ESTIMATORS``.

Outcome estimators share the signature ``fn(rewards[N], group_ids[N], mask[N, T] | None, **options)``:
one scalar reward per completion, ``group_ids`` marking completions sampled from the same
prompt (arbitrary integers, need not be sorted or contiguous), and the mask of the tokens
the update trains on (for estimators whose statistics count tokens, e.g. REINFORCE++).
They return ``[N]`` (one advantage per completion) or ``[N, T]`` (per token).
Those registered with ``needs_groups=True`` need several completions per prompt.
Options are keyword-only; unknown ones raise ``TypeError`` so config typos do not pass
silently.

``gae`` (registered with ``needs_critic=True``) works on per-token rewards and a critic's
values: ``fn(token_rewards[N, T], values[N, T], mask[N, T], **options) -> (advantages, returns)``.

Advantages are constants for the policy gradient, so every estimator returns a tensor
with no autograd history.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mmrft.algorithms.registry import register_advantage_estimator

__all__ = [
    "group_stats",
    "grpo",
    "dr_grpo",
    "rloo",
    "reinforce_pp",
    "reinforce_pp_baseline",
    "gae",
    "outcome_token_rewards",
    "masked_whiten",
    "broadcast_to_tokens",
]


def _check_outcome_inputs(rewards: Tensor, group_ids: Tensor) -> Tensor:
    if rewards.dim() != 1 or group_ids.dim() != 1 or rewards.shape != group_ids.shape:
        raise ValueError(
            f"rewards and group_ids must be 1-D of equal length, got {tuple(rewards.shape)} "
            f"and {tuple(group_ids.shape)}"
        )
    if group_ids.is_floating_point() or group_ids.is_complex():
        raise ValueError(f"group_ids must be an integer tensor, got {group_ids.dtype}")
    rewards = rewards.detach()
    if not rewards.is_floating_point():
        rewards = rewards.to(torch.get_default_dtype())
    return rewards


def group_stats(rewards: Tensor, group_ids: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-completion statistics of its own group, each broadcast back to shape ``[N]``.

    Returns ``(mean, std, count, value_range)`` where ``std`` is the *unbiased* standard
    deviation ``sqrt(sum_j (r_j - mean)^2 / (n - 1))`` (0 for groups of one) and
    ``value_range = max_g(r) - min_g(r)`` (exactly 0 when all rewards are identical).

    Args:
        rewards: ``FloatTensor[N]``.
        group_ids: ``LongTensor[N]``, arbitrary integer ids.
    """
    rewards = _check_outcome_inputs(rewards, group_ids)
    inverse = torch.unique(group_ids, return_inverse=True)[1]
    num_groups = int(inverse.max().item()) + 1 if inverse.numel() else 0
    zeros = rewards.new_zeros(num_groups)
    count = zeros.index_add(0, inverse, torch.ones_like(rewards))
    mean = zeros.index_add(0, inverse, rewards) / count.clamp(min=1)
    # Two-pass variance: avoids the cancellation of E[r^2] - E[r]^2.
    dev = rewards - mean[inverse]
    var = zeros.index_add(0, inverse, dev * dev) / (count - 1).clamp(min=1)
    gmax = zeros.scatter_reduce(0, inverse, rewards, reduce="amax", include_self=False)
    gmin = zeros.scatter_reduce(0, inverse, rewards, reduce="amin", include_self=False)
    return mean[inverse], var.sqrt()[inverse], count[inverse], (gmax - gmin)[inverse]


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    # num is exactly 0 wherever den can be 0 (constant groups/batches); keep that 0 even
    # with eps=0 instead of producing 0/0 = NaN.
    return torch.where(num == 0, torch.zeros_like(num), num / torch.where(den == 0, torch.ones_like(den), den))


def _centered(rewards: Tensor, group_ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    mean, std, count, value_range = group_stats(rewards, group_ids)
    # Exact zeros for constant groups: float rounding of the mean would otherwise leave
    # ~1e-17 residues that become ~1e-11 "advantages" after std normalisation.
    centered = torch.where(value_range == 0, torch.zeros_like(mean), rewards.detach().to(mean.dtype) - mean)
    return centered, std, count


@register_advantage_estimator("grpo", needs_groups=True)
def grpo(rewards: Tensor, group_ids: Tensor, mask: Tensor | None = None, *, eps: float = 1e-6) -> Tensor:
    """GRPO group-relative advantage (DeepSeekMath, Shao et al. 2024, Sec. 4.1.2).

    ``A_i = (r_i - mean_g(r)) / (std_g(r) + eps)`` with ``std_g`` the *unbiased* group
    standard deviation (divides by ``n - 1``, torch's default, as in TRL and verl).
    Groups of one and groups with identical rewards get exactly 0. Without the division
    this is ``dr_grpo``. ``mask`` is not used (an outcome advantage is per completion).

    Args:
        rewards: ``FloatTensor[N]`` outcome rewards.
        group_ids: ``LongTensor[N]`` prompt/group ids.
    Returns:
        ``FloatTensor[N]``.
    """
    centered, std, _ = _centered(rewards, group_ids)
    return _safe_div(centered, std + eps)


@register_advantage_estimator("dr_grpo", needs_groups=True)
def dr_grpo(rewards: Tensor, group_ids: Tensor, mask: Tensor | None = None) -> Tensor:
    """Dr.GRPO advantage (Liu et al. 2025, "Understanding R1-Zero-Like Training").

    ``A_i = r_i - mean_g(r)``: the std division of GRPO is dropped because it biases
    updates towards too-easy / too-hard prompts. Shapes: ``[N], [N] -> [N]``.
    """
    return _centered(rewards, group_ids)[0]


@register_advantage_estimator("rloo", needs_groups=True)
def rloo(rewards: Tensor, group_ids: Tensor, mask: Tensor | None = None) -> Tensor:
    """RLOO leave-one-out baseline (Ahmadian et al. 2024, "Back to Basics").

    ``A_i = r_i - 1/(n-1) * sum_{j != i} r_j = n/(n-1) * (r_i - mean_g(r))`` for a group of
    size ``n``; groups of one get 0. Shapes: ``[N], [N] -> [N]``.
    """
    centered, _, count = _centered(rewards, group_ids)
    scale = torch.where(count > 1, count / (count - 1).clamp(min=1), torch.zeros_like(count))
    return centered * scale


def _whiten_over_tokens(values: Tensor, mask: Tensor | None, eps: float) -> Tensor:
    """One value per completion, whitened over the valid tokens of the batch (each completion counts once per
    token): ``[N, T]`` with ``mask``; without one every completion is a single unit and the result is ``[N]``."""
    if mask is None:
        mask = torch.ones_like(values, dtype=torch.bool).unsqueeze(1)
        return _whiten_over_tokens(values, mask, eps)[:, 0]
    if mask.dim() != 2 or mask.shape[0] != values.shape[0]:
        raise ValueError(f"mask must be [N, T] with N = {values.shape[0]}, got {tuple(mask.shape)}")
    counted = values[mask.bool().any(dim=1)]
    if counted.numel() and bool((counted == counted[0]).all()):  # exact zeros, not rounding residues of the mean
        return torch.zeros(mask.shape, dtype=values.dtype, device=values.device)
    return masked_whiten(values.unsqueeze(1).expand(mask.shape), mask, eps=eps)


@register_advantage_estimator("reinforce_pp")
def reinforce_pp(rewards: Tensor, group_ids: Tensor, mask: Tensor | None = None, *, eps: float = 1e-8) -> Tensor:
    """REINFORCE++ (Hu 2025, arXiv:2501.03262): the outcome reward, normalised over the global batch's *tokens*.

    Each valid token t of completion i carries the return ``r_i`` (one outcome reward, no discount), and the
    advantages are whitened over every valid token of the batch, as in the paper and its reference
    implementations (OpenRLHF; verl's ``compute_reinforce_plus_plus_outcome_advantage``):
    ``A_it = (r_i - mu) / sqrt(var + eps)`` with ``mu = sum_i L_i r_i / sum_i L_i`` and
    ``var = sum_i L_i (r_i - mu)^2 / (sum_i L_i - 1)`` (Bessel-corrected), ``L_i`` the valid tokens of row i.
    A long completion therefore weighs more in the statistics than a short one. ``group_ids`` is ignored.

    Shapes: ``rewards [N]``, ``mask [N, T]`` -> ``[N, T]`` (0 on invalid tokens). Without ``mask`` each
    completion counts as one unit (per-sequence whitening) and the result is ``[N]``.
    """
    r = _check_outcome_inputs(rewards, group_ids)
    return _whiten_over_tokens(r, mask, eps)


@register_advantage_estimator("reinforce_pp_baseline", needs_groups=True)
def reinforce_pp_baseline(rewards: Tensor, group_ids: Tensor, mask: Tensor | None = None, *,
                          eps: float = 1e-8) -> Tensor:
    """REINFORCE++-baseline (Hu 2025, arXiv:2501.03262): group-mean baseline, then whitening over the batch's tokens.

    ``x_i = r_i - mean_g(r)``, then ``x`` is whitened over every valid token of the batch like ``reinforce_pp``
    (token-weighted mean and Bessel-corrected variance, ``A_it = (x_i - mu) / sqrt(var + eps)``), as verl's
    ``compute_reinforce_plus_plus_baseline_outcome_advantage`` does. Scaling by batch (not group) statistics keeps
    the relative weight of prompts, unlike GRPO. Because the whitening subtracts the token-weighted mean of ``x``,
    which is not 0 when completions differ in length, a group whose rewards are all equal gets ``-mu / sqrt(var)``
    rather than 0 (as in those implementations). Shapes as ``reinforce_pp``.
    """
    return _whiten_over_tokens(_centered(rewards, group_ids)[0], mask, eps)


@register_advantage_estimator("gae", needs_critic=True)
def gae(
    token_rewards: Tensor,
    values: Tensor,
    mask: Tensor,
    *,
    gamma: float = 1.0,
    lam: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Generalised Advantage Estimation (Schulman et al. 2016), used with PPO.

    ``delta_t = r_t + gamma * V_{t+1} - V_t``; ``A_t = delta_t + gamma * lam * A_{t+1}``;
    ``returns_t = A_t + V_t``. ``t+1`` means the next *valid* token of the row: masked
    positions are skipped (their rewards/values are ignored), so after the last valid
    token ``V_{t+1} = A_{t+1} = 0`` and the recursion stops there. Masked outputs are 0.

    Args:
        token_rewards: ``FloatTensor[N, T]`` per-token rewards (e.g. outcome reward on the
            last token minus a KL penalty).
        values: ``FloatTensor[N, T]`` critic values (detached internally).
        mask: ``[N, T]`` bool/0-1 mask of valid response tokens.
    Returns:
        ``(advantages[N, T], returns[N, T])``, both without autograd history.
    """
    if not (token_rewards.shape == values.shape == mask.shape) or token_rewards.dim() != 2:
        raise ValueError(
            f"token_rewards, values and mask must share a 2-D shape, got {tuple(token_rewards.shape)}, "
            f"{tuple(values.shape)}, {tuple(mask.shape)}"
        )
    with torch.no_grad():
        valid = mask.bool()
        rewards_ = token_rewards.detach().to(values.dtype)
        values_ = values.detach()
        n, t_len = values_.shape
        advantages = torch.zeros_like(values_)
        next_value = values_.new_zeros(n)
        next_adv = values_.new_zeros(n)
        for t in reversed(range(t_len)):
            m = valid[:, t]
            delta = rewards_[:, t] + gamma * next_value - values_[:, t]
            adv_t = delta + gamma * lam * next_adv
            # Masked positions leave the carried state untouched, which bridges gaps
            # (e.g. masked tool-output tokens) and handles right padding.
            next_value = torch.where(m, values_[:, t], next_value)
            next_adv = torch.where(m, adv_t, next_adv)
            advantages[:, t] = torch.where(m, adv_t, torch.zeros_like(adv_t))
        returns = torch.where(valid, advantages + values_, torch.zeros_like(values_))
    return advantages, returns


def outcome_token_rewards(
    rewards: Tensor, mask: Tensor, kl: Tensor | None = None, kl_coef: float = 0.0
) -> Tensor:
    """Per-token rewards for PPO from one outcome reward per completion (Ziegler et al. 2019; InstructGPT).

    ``r_t = -kl_coef * kl_t + [t is the last valid token] * reward`` on valid tokens, 0 elsewhere. ``kl`` is the
    per-token KL estimate to the reference policy (k1 = ``logp - ref_logp`` in those papers); without it, or with
    ``kl_coef = 0``, only the last valid token carries a reward. A row with no valid token gets all zeros (its
    reward is dropped: there is no token to carry it).

    Shapes: ``rewards [N]``, ``mask [N, T]``, ``kl [N, T]`` -> ``[N, T]`` (dtype of ``rewards``), no autograd history.
    """
    if rewards.dim() != 1 or mask.dim() != 2 or rewards.shape[0] != mask.shape[0]:
        raise ValueError(f"expected rewards [N] and mask [N, T], got {tuple(rewards.shape)} and {tuple(mask.shape)}")
    if kl is not None and kl.shape != mask.shape:
        raise ValueError(f"kl must have the mask's shape {tuple(mask.shape)}, got {tuple(kl.shape)}")
    with torch.no_grad():
        valid = mask.bool()
        out = torch.zeros(mask.shape, dtype=rewards.dtype, device=rewards.device)
        if kl is not None and kl_coef != 0:
            out = torch.where(valid, -kl_coef * kl.detach().to(rewards.dtype), out)
        positions = torch.arange(mask.shape[1], device=mask.device).expand_as(valid)
        last = torch.where(valid, positions, torch.full_like(positions, -1)).max(dim=1).values  # -1: no token
        rows = torch.nonzero(last >= 0).squeeze(1)
        out[rows, last[rows]] += rewards.detach()[rows]
    return out


def masked_whiten(
    x: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8,
    stats: tuple[int, float, float] | None = None,
) -> Tensor:
    """Normalise ``x`` over the valid entries of the whole batch: ``(x - mean) / sqrt(var + eps)`` (+ mean back
    when ``shift_mean=False``), as PPO implementations whiten GAE advantages (lm-human-preferences ``whiten``,
    verl's and OpenRLHF's ``masked_whiten``).

    ``var`` is the *unbiased* variance of the valid entries, ``sum (x - mean)^2 / (n - 1)`` (as those
    implementations compute it). Invalid entries are 0 in the output; with fewer than 2 valid entries, or zero
    variance, the valid entries become ``x - mean`` (no division), not NaN. ``stats = (count, mean, var)``
    replaces the statistics of ``x``'s own valid entries (e.g. those of a batch split over data-parallel
    processes; ``var`` unbiased).
    """
    if x.shape != mask.shape:
        raise ValueError(f"x and mask must share a shape, got {tuple(x.shape)} and {tuple(mask.shape)}")
    with torch.no_grad():
        valid = mask.bool()
        if stats is None:
            n = int(valid.sum())
            if n == 0:
                return torch.zeros_like(x)
            vals = x.detach()[valid]
            mean = vals.mean()
            var = ((vals - mean) ** 2).sum() / max(n - 1, 1)
        else:
            n, mean, var = stats
            if n == 0:
                return torch.zeros_like(x)
        centred = x.detach() - mean
        out = centred / torch.sqrt(torch.as_tensor(var + eps, dtype=centred.dtype)) if n > 1 and var > 0 else centred
        if not shift_mean:
            out = out + mean
        return torch.where(valid, out, torch.zeros_like(out))


def broadcast_to_tokens(adv: Tensor, mask: Tensor) -> Tensor:
    """Copy each sequence's scalar advantage onto its valid tokens.

    ``out[i, t] = adv[i] if mask[i, t] else 0``. Shapes: ``adv [N]``, ``mask [N, T]`` ->
    ``[N, T]`` (dtype of ``adv``). Outcome-reward methods (GRPO, RLOO, ...) assign the same
    advantage to every token of a completion.
    """
    if adv.dim() != 1 or mask.dim() != 2 or adv.shape[0] != mask.shape[0]:
        raise ValueError(f"expected adv [N] and mask [N, T], got {tuple(adv.shape)} and {tuple(mask.shape)}")
    return torch.where(mask.bool(), adv.unsqueeze(-1), torch.zeros((), dtype=adv.dtype, device=adv.device))
