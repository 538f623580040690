"""Reward normalisations from papers whose point is how rewards become advantages: GDPO and BNPO.

``gdpo`` takes several reward *components* per completion (``[N, K]``): it is registered as a ``per_component``
estimator, which the trainer calls with one column per entry of ``rewards.weights`` and ``weights=`` their weights
(``algorithm.advantage=gdpo``). ``bnpo`` is BNPO's Beta
normalisation of a single reward and is registered as the advantage estimator ``bnpo``; ``bnpo_decomposed`` is the
paper's multi-reward form (one BNPO advantage per component, averaged).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mmrft.algorithms.advantages import _check_outcome_inputs, _safe_div, group_stats, grpo
from mmrft.algorithms.registry import register_advantage_estimator

__all__ = ["gdpo", "bnpo", "bnpo_decomposed", "beta_log_pdf"]


def _check_components(reward_components: Tensor, group_ids: Tensor) -> Tensor:
    if reward_components.dim() != 2 or reward_components.shape[1] < 1:
        raise ValueError(f"reward_components must be [N, K] with K >= 1, got {tuple(reward_components.shape)}")
    if group_ids.dim() != 1 or group_ids.shape[0] != reward_components.shape[0]:
        raise ValueError(f"group_ids must be [N] with N = {reward_components.shape[0]}, got {tuple(group_ids.shape)}")
    rewards = reward_components.detach()
    return rewards if rewards.is_floating_point() else rewards.to(torch.get_default_dtype())


@register_advantage_estimator("gdpo", needs_groups=True, per_component=True)
def gdpo(
    reward_components: Tensor,
    group_ids: Tensor,
    mask: Tensor | None = None,
    *,
    weights: Tensor | Sequence[float] | None = None,
    eps: float = 1e-4,
) -> Tensor:
    """GDPO advantage, group reward-decoupled normalisation (NVIDIA 2026, "GDPO: Group reward-Decoupled
    Normalization Policy Optimization for Multi-reward RL Optimization", arXiv:2601.05242).

    Summing rewards before GRPO's group normalisation lets the component with the largest spread decide the sign
    of most advantages ("reward advantage collapse"); GDPO normalises each component within its group first:

    1. ``A_k,i = (r_k,i - mean_g(r_k)) / (std_g(r_k) + eps)`` per component ``k`` and group ``g`` of ``i``
       (``mmrft.algorithms.grpo``: unbiased std, exact 0 for constant groups and groups of one);
    2. ``S_i = sum_k w_k A_k,i`` (``weights`` default all 1);
    3. ``A_i = (S_i - mean(S)) / (std(S) + eps)`` over the whole batch of completions (unbiased std; exactly 0
       when all ``S_i`` are equal).

    Order and ``eps = 1e-4`` as the authors' reference implementation (trl-GDPO ``grpo_trainer.py``) and TRL's
    ``multi_objective_aggregation="normalize_then_sum"`` (``GRPOTrainer._generate_and_score_completions``). verl's
    ``compute_gdpo_outcome_advantage`` whitens step 3 over tokens instead of completions. With ``K = 1`` and
    ``weights=None`` this is GRPO followed by batch whitening.

    Args:
        reward_components: ``[N, K]`` rewards, one column per component.
        group_ids: ``[N]`` integer prompt/group ids.
        mask: unused (an outcome advantage is per completion).
        weights: ``[K]`` component weights.
    Returns:
        ``[N]`` advantages, without autograd history.
    """
    rewards = _check_components(reward_components, group_ids)
    n, k = rewards.shape
    w = torch.ones(k, dtype=rewards.dtype, device=rewards.device) if weights is None else torch.as_tensor(
        weights, dtype=rewards.dtype, device=rewards.device)
    if w.shape != (k,):
        raise ValueError(f"weights must have one entry per reward component ({k}), got shape {tuple(w.shape)}")
    summed = sum(w[j] * grpo(rewards[:, j], group_ids, eps=eps) for j in range(k))
    if n < 2 or bool((summed == summed[0]).all()):
        return torch.zeros_like(summed)
    centered = summed - summed.mean()
    return _safe_div(centered, summed.std() + eps)


def beta_log_pdf(p: Tensor, alpha: Tensor | float, beta: Tensor | float) -> Tensor:
    """``log f(p; alpha, beta)`` of the Beta density, with ``0 * log 0 = 0`` (so ``p`` may be exactly 0 or 1 when
    an exponent is 0; ``torch.distributions.Beta`` gives NaN there)."""
    alpha, beta = torch.as_tensor(alpha, dtype=p.dtype), torch.as_tensor(beta, dtype=p.dtype)
    log_b = torch.lgamma(alpha) + torch.lgamma(beta) - torch.lgamma(alpha + beta)
    return torch.xlogy(alpha - 1.0, p) + torch.xlogy(beta - 1.0, 1.0 - p) - log_b


@register_advantage_estimator("bnpo", needs_groups=True)
def bnpo(
    rewards: Tensor,
    group_ids: Tensor,
    mask: Tensor | None = None,
    *,
    min_value: float | None = None,
    max_value: float | None = None,
    max_weight: float = 1e6,
) -> Tensor:
    """BNPO advantage, Beta normalisation (Xiao, Zhang, Cao 2025, "BNPO: Beta Normalization Policy Optimization",
    arXiv:2506.02864; the authors' ``compute_bnpo_outcome_advantage``, changyi7231/BNPO
    recipe/bnpo/src/bnpo_ray_trainer.py).

    With rewards mapped to ``[0, 1]`` (``s = (r - min_value) / (max_value - min_value)``; ``None`` takes the
    batch's smallest / largest reward) and ``p_g`` the mean of group ``g``:
    ``A_i = (s_i - p_g) / f(p_g; alpha, beta)``, ``f`` the Beta density. ``(alpha, beta)`` follow the batch: fit
    a Beta to the groups' ``p_g`` by moments (``m = mean(p)``, ``v = var(p)`` unbiased, ``c = m (1 - m) / v - 1``,
    ``a = c m``, ``b = c (1 - m)``), then ``alpha = max(1 + a / 3, 1)``, ``beta = max(1 + b / 3, 1)`` (as the
    authors' code). ``1 / f`` is capped at ``max_weight`` (the authors' 1e6). ``alpha = beta = 1.5`` gives
    ``1 / f = pi / (8 sqrt(p (1 - p)))``, for binary rewards GRPO's std normalisation up to a constant;
    ``alpha = beta = 1`` is REINFORCE with the group-mean baseline.

    Why an estimator: TRL's ``loss_type="bnpo"`` is only a token mean over the local batch (mmrft's
    ``token-mean`` over the whole minibatch, independent of the micro-batch split), not the paper's method.

    Edge cases: fewer than two groups of two or more gives ``alpha = beta = 1`` (so does the authors' fallback);
    so does ``v = 0`` (every group has the same ``p``; the authors' code divides by 0 there). Groups of one get
    advantage 0 and stay out of the fit (the authors use ``p = 0`` for them); constant groups get exactly 0.

    The reward range: the authors fix ``[0, 1]`` (binary rewards) and map other rewards affinely. mmrft's rewards
    are weighted sums of any scale, so by default the batch's own range is used; for binary rewards with both
    outcomes in the batch that is exactly ``[0, 1]``, and a batch of equal rewards gives zeros either way. Give
    ``min_value`` / ``max_value`` (``algorithm.advantage_options``) for a fixed range; rewards outside it raise
    ``ValueError``. ``mask`` is unused. Shapes ``[N], [N] -> [N]``.
    """
    rewards = _check_outcome_inputs(rewards, group_ids)
    if rewards.numel() == 0:
        return torch.zeros_like(rewards)
    lo = float(rewards.min()) if min_value is None else float(min_value)
    hi = float(rewards.max()) if max_value is None else float(max_value)
    if hi == lo and (min_value is None or max_value is None):
        return torch.zeros_like(rewards)  # every reward equal
    if not hi > lo:
        raise ValueError(f"bnpo needs max_value > min_value, got {lo}, {hi}")
    scores = (rewards - lo) / (hi - lo)
    if bool(((scores < 0) | (scores > 1)).any()):
        raise ValueError(f"bnpo: rewards must lie in [min_value, max_value] = [{lo}, {hi}]")
    _, _, count, value_range = group_stats(scores, group_ids)
    inverse = torch.unique(group_ids, return_inverse=True)[1]
    num_groups = int(inverse.max()) + 1 if inverse.numel() else 0
    sizes = scores.new_zeros(num_groups).index_add(0, inverse, torch.ones_like(scores))
    group_p = (scores.new_zeros(num_groups).index_add(0, inverse, scores) / sizes.clamp(min=1)).clamp(0.0, 1.0)
    ps, p, fitted = group_p[sizes >= 2], group_p[inverse], count >= 2
    alpha = beta = torch.ones((), dtype=p.dtype, device=p.device)
    if ps.numel() >= 2:
        m, v = ps.mean(), ps.var()
        if bool(v > 0):
            c = m * (1.0 - m) / v - 1.0
            alpha = (1.0 + c * m / 3.0).clamp(min=1.0)
            beta = (1.0 + c * (1.0 - m) / 3.0).clamp(min=1.0)
    weight = torch.exp(-beta_log_pdf(p, alpha, beta)).clamp(max=max_weight)
    centered = torch.where((value_range == 0) | ~fitted, torch.zeros_like(scores), scores - p)
    return torch.where(centered == 0, torch.zeros_like(centered), weight * centered)


def bnpo_decomposed(
    reward_components: Tensor,
    group_ids: Tensor,
    *,
    min_value: float | None = None,
    max_value: float | None = None,
    max_weight: float = 1e6,
) -> Tensor:
    """BNPO's advantage decomposition for several reward components (Xiao et al. 2025; the authors'
    ``use_advantage_decomposition``): ``A_i = 1/K sum_k bnpo(r_k)_i``, each component normalised by its own Beta
    fit and, by default, its own range (see ``bnpo``). ``reward_components`` ``[N, K]``; returns ``[N]``."""
    rewards = _check_components(reward_components, group_ids)
    k = rewards.shape[1]
    return sum(bnpo(rewards[:, j], group_ids, min_value=min_value, max_value=max_value, max_weight=max_weight)
               for j in range(k)) / k
