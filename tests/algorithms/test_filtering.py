import pytest
import torch
from torch.testing import assert_close

from mmrft.algorithms import (
    GroupFilterStats,
    filter_groups,
    overlong_filter_mask,
    overlong_penalty,
    zero_variance_group_mask,
)

# group 3: [1, 0] varies; group 8: [1, 1] constant; group 100: singleton; group -5: [2, 2] constant;
# group 6: differs by 1e-9 only (below eps); group 0: [0, 0.5, 0] varies. Ids unsorted, non-contiguous.
REWARDS = torch.tensor([1.0, 1.0, 0.0, 0.5, 2.0, 1.0, 0.3, 2.0, 0.3 + 1e-9, 0.0, 0.5, 0.0], dtype=torch.float64)
GROUPS = torch.tensor([3, 8, 3, 100, -5, 8, 6, -5, 6, 0, 0, 0])
KEEP = [True, False, True, False, False, False, False, False, False, True, True, True]


def test_zero_variance_group_mask():
    keep = zero_variance_group_mask(REWARDS, GROUPS)
    assert keep.dtype == torch.bool
    assert keep.tolist() == KEEP
    # a looser eps also drops group 0 (range 0.5) but keeps group 3 (range 1)
    loose = zero_variance_group_mask(REWARDS, GROUPS, eps=0.6)
    assert loose.tolist() == [True, False, True] + [False] * 9
    assert zero_variance_group_mask(torch.zeros(0), torch.zeros(0, dtype=torch.long)).shape == (0,)
    assert zero_variance_group_mask(torch.tensor([1, 0, 1]), torch.tensor([2, 2, 4])).tolist() == [True, True, False]


def test_filter_groups_stats():
    keep, stats = filter_groups(REWARDS, GROUPS)
    assert keep.tolist() == KEEP
    assert stats == GroupFilterStats(groups_seen=6, groups_kept=2, completions_kept=5)
    assert stats.keep_ratio == pytest.approx(1 / 3)
    _, empty = filter_groups(torch.zeros(0), torch.zeros(0, dtype=torch.long))
    assert empty == GroupFilterStats(0, 0, 0) and empty.keep_ratio == 0.0


def test_overlong_penalty_hand_values():
    lengths = torch.tensor([0, 16, 17, 18, 19, 20, 21, 100])
    # max_len 20, buffer 4 -> penalty starts after 16, reaches -1 at 20
    out = overlong_penalty(lengths, max_len=20, buffer_len=4)
    assert out.dtype == torch.get_default_dtype()
    assert_close(out, torch.tensor([0.0, 0.0, -0.25, -0.5, -0.75, -1.0, -1.0, -1.0]))
    assert_close(
        overlong_penalty(lengths, 20, 4, penalty=0.5),
        torch.tensor([0.0, 0.0, -0.125, -0.25, -0.375, -0.5, -0.5, -0.5]),
    )
    # no buffer: hard penalty beyond max_len only
    assert_close(overlong_penalty(torch.tensor([19, 20, 21]), 20, 0), torch.tensor([0.0, 0.0, -1.0]))
    # buffer == max_len: linear from length 0
    assert_close(overlong_penalty(torch.tensor([0, 5, 10, 11]), 10, 10), torch.tensor([0.0, -0.5, -1.0, -1.0]))
    with pytest.raises(ValueError):
        overlong_penalty(lengths, 10, 11)
    with pytest.raises(ValueError):
        overlong_penalty(lengths, 10, -1)


def test_overlong_filter_mask():
    out = overlong_filter_mask(torch.tensor([False, True, False, True]))
    assert out.dtype == torch.get_default_dtype()
    assert out.tolist() == [1.0, 0.0, 1.0, 0.0]
    assert overlong_filter_mask(torch.tensor([0, 1])).tolist() == [1.0, 0.0]
