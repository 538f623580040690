"""Sample filtering and reward shaping from DAPO (Yu et al. 2025).

Pure functions over per-completion tensors; deciding how many extra prompts to sample to
refill a batch is the trainer's job.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mmrft.algorithms.advantages import group_stats

__all__ = [
    "zero_variance_group_mask",
    "overlong_penalty",
    "overlong_filter_mask",
    "GroupFilterStats",
    "filter_groups",
]


def zero_variance_group_mask(rewards: Tensor, group_ids: Tensor, eps: float = 1e-6) -> Tensor:
    """DAPO dynamic-sampling mask (Yu et al. 2025): keep groups whose rewards differ.

    ``keep_i = (max_g(r) - min_g(r)) > eps`` for the group ``g`` of completion ``i``. A group
    whose rewards are all equal (all correct / all wrong) has zero group-relative advantage
    and only dilutes the batch; groups of one have no variance and are dropped too. The
    range (not the std) is tested so the decision does not depend on the std convention.

    Args:
        rewards: ``FloatTensor[N]``; group_ids: ``LongTensor[N]`` (arbitrary ids).
    Returns:
        ``BoolTensor[N]``.
    """
    return group_stats(rewards, group_ids)[3] > eps


def overlong_penalty(lengths: Tensor, max_len: int, buffer_len: int, penalty: float = 1.0) -> Tensor:
    """DAPO soft overlong punishment (Yu et al. 2025), added to the outcome reward.

    With ``L = max_len`` and ``B = buffer_len``::

        0                               if len <= L - B
        -(len - (L - B)) / B * penalty  if L - B < len <= L
        -penalty                        if len > L

    Args:
        lengths: ``LongTensor[N]`` completion lengths in tokens.
        max_len: ``L``, the maximum generation length; buffer_len: ``B`` with ``0 <= B <= L``
            (``B = 0`` is a hard -penalty beyond ``L``).
    Returns:
        ``FloatTensor[N]`` (values in ``[-penalty, 0]``).
    """
    if not 0 <= buffer_len <= max_len:
        raise ValueError(f"need 0 <= buffer_len <= max_len, got buffer_len={buffer_len}, max_len={max_len}")
    lengths_f = lengths.detach().to(torch.get_default_dtype())
    excess = lengths_f - float(max_len - buffer_len)
    if buffer_len == 0:
        frac = (excess > 0).to(lengths_f.dtype)
    else:
        frac = (excess / buffer_len).clamp(0.0, 1.0)
    return -frac * penalty


def overlong_filter_mask(truncated: Tensor) -> Tensor:
    """DAPO overlong filtering (Yu et al. 2025): ``1.0`` keep, ``0.0`` for truncated completions.

    Truncated samples have no proper outcome, so their loss is masked out instead of being
    punished as wrong. Multiply into the loss mask / per-sequence weights.
    Shapes: ``BoolTensor[N] -> FloatTensor[N]``.
    """
    return (~truncated.bool()).to(torch.get_default_dtype())


@dataclass
class GroupFilterStats:
    """Counters from ``filter_groups`` for logging DAPO dynamic sampling."""

    groups_seen: int
    groups_kept: int
    completions_kept: int

    @property
    def keep_ratio(self) -> float:
        """Fraction of groups kept (0.0 when none were seen)."""
        return self.groups_kept / self.groups_seen if self.groups_seen else 0.0


def filter_groups(rewards: Tensor, group_ids: Tensor, eps: float = 1e-6) -> tuple[Tensor, GroupFilterStats]:
    """``zero_variance_group_mask`` plus counters (DAPO dynamic sampling, Yu et al. 2025).

    Returns ``(keep_mask BoolTensor[N], GroupFilterStats)``.
    """
    keep = zero_variance_group_mask(rewards, group_ids, eps=eps)
    groups_seen = int(torch.unique(group_ids).numel())
    groups_kept = int(torch.unique(group_ids[keep]).numel())
    return keep, GroupFilterStats(groups_seen, groups_kept, int(keep.sum()))
