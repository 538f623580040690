"""GDPO's decoupled per-reward normalisation and BNPO's Beta normalisation, against hand-computed values."""

import math

import pytest
import torch
from torch.testing import assert_close

from mmrft.algorithms import ADVANTAGE_ESTIMATORS, beta_log_pdf, bnpo, bnpo_decomposed, gdpo, grpo

F64 = torch.float64
R2 = math.sqrt(2.0)


def t(values, dtype=F64):
    return torch.tensor(values, dtype=dtype)


# --------------------------------------------------------------------------- GDPO
def _gdpo_case():
    # two prompts x two completions; component 0 = correctness, component 1 = format
    rewards = t([[1.0, 1.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    return rewards, torch.tensor([0, 0, 1, 1])


def test_gdpo_hand_values():
    rewards, groups = _gdpo_case()
    out = gdpo(rewards, groups, eps=0.0)
    # per component, within groups (unbiased std of two values d apart = d / sqrt 2):
    #   correctness: g0 (1, 0) -> +-1/sqrt2, g1 (1, 0) -> +-1/sqrt2 ; format: g0 constant -> 0, g1 (1, 0) -> +-1/sqrt2
    #   summed S = 1/sqrt2, -1/sqrt2, sqrt2, -sqrt2 ; batch mean 0, unbiased std sqrt((.5 + .5 + 2 + 2) / 3) = sqrt(5/3)
    s = [1 / R2, -1 / R2, R2, -R2]
    assert_close(out, t(s) / math.sqrt(5 / 3))  # 0.5477, -0.5477, 1.0954, -1.0954
    # GRPO on the summed rewards (2, 1 | 2, 0) cannot tell the two groups apart: +-1/sqrt2 in both
    assert_close(grpo(rewards.sum(-1), groups, eps=0.0), t([1 / R2, -1 / R2, 1 / R2, -1 / R2]))


def test_gdpo_weights_and_default_eps():
    rewards, groups = _gdpo_case()
    # weights (1, 2): S = 1/sqrt2, -1/sqrt2, 3/sqrt2, -3/sqrt2 ; std sqrt((.5 + .5 + 4.5 + 4.5) / 3) = sqrt(10/3)
    assert_close(gdpo(rewards, groups, weights=[1.0, 2.0], eps=0.0), t([1 / R2, -1 / R2, 3 / R2, -3 / R2]) / math.sqrt(10 / 3))
    # eps = 1e-4 in both divisions (the authors' and TRL's value)
    a = 0.5 / (1 / R2 + 1e-4)  # each group-normalised +-0.5
    s = t([a, -a, 2 * a, -2 * a])
    assert_close(gdpo(rewards, groups), s / (s.std() + 1e-4))


def test_gdpo_one_component_is_grpo_then_batch_whitening():
    r = t([0.0, 1.0, 3.0, 2.0, 2.0, 7.0])
    groups = torch.tensor([5, 5, 9, 9, 2, 2])  # arbitrary, non-contiguous ids
    a = grpo(r, groups, eps=1e-4)
    assert_close(gdpo(r[:, None], groups), (a - a.mean()) / (a.std() + 1e-4))


def test_gdpo_edge_cases():
    groups = torch.tensor([0, 0, 1, 1])
    # all groups constant in every component: exact zeros, no NaN (eps = 0 too)
    assert torch.equal(gdpo(t([[1.0, 0.0]] * 4), groups, eps=0.0), torch.zeros(4, dtype=F64))
    # one completion: 0
    assert torch.equal(gdpo(t([[1.0, 2.0]]), torch.tensor([0])), torch.zeros(1, dtype=F64))
    # integer rewards are accepted, gradients never flow back
    x = t([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]]).requires_grad_()
    out = gdpo(x, groups)
    assert not out.requires_grad
    assert_close(gdpo(torch.tensor([[1, 0], [0, 1], [1, 1], [0, 0]]), groups).to(F64), out, atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError):
        gdpo(t([1.0, 2.0]), torch.tensor([0, 0]))  # not [N, K]
    with pytest.raises(ValueError):
        gdpo(t([[1.0, 2.0]]), torch.tensor([0, 0]))  # group ids of another length
    with pytest.raises(ValueError):
        gdpo(t([[1.0, 2.0], [0.0, 1.0]]), torch.tensor([0, 0]), weights=[1.0, 2.0, 3.0])  # weights of another length


# --------------------------------------------------------------------------- BNPO
def _w(p, a, b):
    """1 / Beta(a, b) density at p, by hand: B(a, b) / (p^(a-1) (1-p)^(b-1))."""
    log_b = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    return math.exp(log_b) / (p ** (a - 1) * (1 - p) ** (b - 1))


def test_beta_log_pdf():
    p = t([0.0, 0.25, 0.5, 1.0])
    assert_close(beta_log_pdf(p, 1.0, 1.0), torch.zeros(4, dtype=F64))  # uniform, finite at 0 and 1
    assert_close(beta_log_pdf(p[1:3], 2.0, 1.0), t([math.log(0.5), 0.0]))  # 2p
    # Beta(1.5, 1.5) = 8 sqrt(p (1 - p)) / pi
    assert_close(beta_log_pdf(t([0.5]), 1.5, 1.5), t([math.log(4 / math.pi)]))
    assert beta_log_pdf(t([0.0]), 1.5, 1.5).item() == float("-inf")


def test_bnpo_hand_values():
    # three prompts of four, accuracies p = 0.25, 0.5, 0.75
    r = t([1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0])
    groups = torch.arange(3).repeat_interleave(4)
    # moments of p: mean 0.5, unbiased var (0.0625 + 0 + 0.0625) / 2 = 0.0625 ; c = 0.25 / 0.0625 - 1 = 3
    # a = b = 1.5 -> alpha = beta = 1 + 1.5 / 3 = 1.5 ; 1 / f(p) = pi / (8 sqrt(p (1 - p)))
    w25, w50 = math.pi / (8 * math.sqrt(0.1875)), math.pi / 4  # 0.9069, 0.7854
    assert w25 == pytest.approx(_w(0.25, 1.5, 1.5))
    want = [0.75 * w25, -0.25 * w25, -0.25 * w25, -0.25 * w25,
            0.5 * w50, 0.5 * w50, -0.5 * w50, -0.5 * w50,
            0.25 * w25, 0.25 * w25, 0.25 * w25, -0.75 * w25]
    assert_close(bnpo(r, groups), t(want))
    assert ADVANTAGE_ESTIMATORS["bnpo"] is bnpo and ADVANTAGE_ESTIMATORS.info("bnpo")["needs_groups"]


def test_bnpo_reward_range_and_uniform_fallbacks():
    r = t([1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0])
    groups = torch.arange(3).repeat_interleave(4)
    # rewards in {-1, 1} mapped to [0, 1]: by the batch's range (default) or a fixed one, same advantages
    assert_close(bnpo(2 * r - 1, groups), bnpo(r, groups))
    assert_close(bnpo(2 * r - 1, groups, min_value=-1.0, max_value=1.0), bnpo(r, groups))
    assert_close(bnpo(r, groups, min_value=0.0, max_value=1.0), bnpo(r, groups))
    # half-credit rewards: the batch range maps 0.5 to 1, a fixed [0, 1] keeps it at 0.5 (p = 1/8, 1/4, 3/8)
    assert_close(bnpo(r / 2, groups), bnpo(r, groups))
    fixed = bnpo(r / 2, groups, min_value=0.0, max_value=1.0)
    assert not torch.allclose(fixed, bnpo(r, groups)) and torch.isfinite(fixed).all()
    with pytest.raises(ValueError):
        bnpo(2 * r - 1, groups, min_value=0.0)  # -1 is outside [0, max]
    with pytest.raises(ValueError):
        bnpo(r, groups, min_value=1.0, max_value=1.0)
    # all rewards equal: zeros
    assert torch.equal(bnpo(torch.full((12,), 3.0, dtype=F64), groups), torch.zeros(12, dtype=F64))
    # every group at p = 0.5: zero variance of p, alpha = beta = 1, A = r - p (REINFORCE with the group mean)
    r2, g2 = t([1, 0, 0, 1]), torch.tensor([0, 0, 1, 1])
    assert_close(bnpo(r2, g2), t([0.5, -0.5, -0.5, 0.5]))
    # a single group: alpha = beta = 1 as well
    assert_close(bnpo(t([1.0, 0.0, 0.0]), torch.tensor([3, 3, 3])), t([2 / 3, -1 / 3, -1 / 3]))


def test_bnpo_degenerate_groups_give_zero_not_nan():
    # p = 0, 0.5, 0.5, 0.5: mean 0.375, var 0.0625, c = 0.375 * 0.625 / 0.0625 - 1 = 2.75
    # alpha = 1 + 2.75 * 0.375 / 3, beta = 1 + 2.75 * 0.625 / 3 (both > 1, so f(0) = 0: 1/f capped at 1e6)
    r = t([0, 0, 1, 0, 0, 1, 1, 0, 0.25])
    groups = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 4])  # group 4 has one completion: 0, left out of the fit
    alpha, beta = 1 + 2.75 * 0.375 / 3, 1 + 2.75 * 0.625 / 3
    w = _w(0.5, alpha, beta)
    out = bnpo(r, groups)
    assert torch.isfinite(out).all()
    assert_close(out, t([0, 0, 0.5 * w, -0.5 * w, -0.5 * w, 0.5 * w, 0.5 * w, -0.5 * w, 0]))
    assert not bnpo(r.clone().requires_grad_(), groups).requires_grad


def test_bnpo_decomposed_averages_components():
    r = t([1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0])
    groups = torch.arange(3).repeat_interleave(4)
    fmt = torch.ones(12, dtype=F64)  # constant component: advantage 0
    assert_close(bnpo_decomposed(torch.stack([r, fmt], -1), groups), bnpo(r, groups) / 2)
    assert_close(bnpo_decomposed(r[:, None], groups), bnpo(r, groups))
