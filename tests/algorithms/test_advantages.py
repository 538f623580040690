import pytest
import torch
from torch.testing import assert_close

from mmrft.algorithms import (
    ADVANTAGE_ESTIMATORS,
    broadcast_to_tokens,
    dr_grpo,
    gae,
    grpo,
    group_stats,
    reinforce_pp,
    reinforce_pp_baseline,
    rloo,
)

F64 = torch.float64

# Unsorted, non-contiguous ids: group 7 -> idx 0,2,7 = [1,2,1]; group 3 -> idx 1,5,8 = [0,3,5];
# group 11 -> idx 3,4 = [2,2] (all equal); group 42 -> idx 6 (singleton).
REWARDS = torch.tensor([1.0, 0.0, 2.0, 2.0, 2.0, 3.0, 0.5, 1.0, 5.0], dtype=F64)
GROUPS = torch.tensor([7, 3, 7, 11, 11, 3, 42, 7, 3])


def t(values):
    return torch.tensor(values, dtype=F64)


def test_group_stats():
    mean, std, count, value_range = group_stats(REWARDS, GROUPS)
    assert_close(mean, t([4 / 3, 8 / 3, 4 / 3, 2, 2, 8 / 3, 0.5, 4 / 3, 8 / 3]))
    # unbiased std: group 7 -> sqrt((1/9 + 4/9 + 1/9) / 2) = sqrt(1/3); group 3 -> sqrt(114/9 / 2)
    s7, s3 = 0.5773502691896257, 2.516611478423583
    assert_close(std, t([s7, s3, s7, 0, 0, s3, 0, s7, s3]))
    assert_close(count, t([3, 3, 3, 2, 2, 3, 1, 3, 3]))
    assert_close(value_range, t([1, 5, 1, 0, 0, 5, 0, 1, 5]))


def test_grpo_hand_values():
    expected = t([-0.5773502692, -1.0596258857, 1.1547005384, 0, 0, 0.1324532357, 0, -0.5773502692, 0.9271726499])
    assert_close(grpo(REWARDS, GROUPS, eps=0.0), expected)
    # default eps = 1e-6 in the denominator
    expected_eps = t([-0.5773492692, -1.0596254646, 1.1546985384, 0, 0, 0.1324531831, 0, -0.5773492692, 0.9271722815])
    assert_close(grpo(REWARDS, GROUPS), expected_eps)
    # GRPO = Dr.GRPO's centred reward divided by the group std; the std division has no switch (use dr_grpo)
    std = group_stats(REWARDS, GROUPS)[1]
    assert_close(grpo(REWARDS, GROUPS, eps=0.0) * std, dr_grpo(REWARDS, GROUPS))
    with pytest.raises(TypeError):
        grpo(REWARDS, GROUPS, normalize_std=False)


def test_dr_grpo_hand_values():
    assert_close(dr_grpo(REWARDS, GROUPS), t([-1 / 3, -8 / 3, 2 / 3, 0, 0, 1 / 3, 0, -1 / 3, 7 / 3]))


def test_rloo_hand_values():
    # e.g. idx 1: 0 - mean(3, 5) = -4 ; idx 0: 1 - mean(2, 1) = -0.5
    assert_close(rloo(REWARDS, GROUPS), t([-0.5, -4.0, 1.0, 0, 0, 0.5, 0, -0.5, 3.5]))


def test_reinforce_pp_without_a_mask_whitens_over_completions():
    # each completion one unit: batch mean 16.5 / 9 = 11/6, unbiased batch std = 1.5
    expected = t([-5 / 9, -11 / 9, 1 / 9, 1 / 9, 1 / 9, 7 / 9, -8 / 9, -5 / 9, 19 / 9])
    assert_close(reinforce_pp(REWARDS, GROUPS, eps=0.0), expected)
    # default eps = 1e-8 inside the square root, as verl's and OpenRLHF's masked_whiten
    assert_close(reinforce_pp(REWARDS, GROUPS), expected * (1.5 / (2.25 + 1e-8) ** 0.5))


# Two right answers of 2 tokens, two wrong answers of 6 tokens (wrong answers are longer), one group.
LONG_WRONG = t([1.0, 1.0, 0.0, 0.0])
LONG_WRONG_MASK = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])


def test_reinforce_pp_whitens_over_tokens_as_the_paper():
    """Hu 2025 (and verl, OpenRLHF) whiten the per-token returns over every valid token of the batch: 16 tokens,
    mean = (2 + 2) / 16 = 0.25, Bessel-corrected var = (4 * 0.75^2 + 12 * 0.25^2) / 15 = 0.2, so
    A_right = 0.75 / sqrt(0.2) = 0.75 * sqrt(5) and A_wrong = -0.25 * sqrt(5) on every valid token. (Whitening
    over the 4 completions instead would give +-0.866: the length-blind statistics this replaces.)"""
    out = reinforce_pp(LONG_WRONG, torch.zeros(4, dtype=torch.long), LONG_WRONG_MASK, eps=0.0)
    r5 = 5 ** 0.5
    right, wrong = 0.75 * r5, -0.25 * r5
    assert_close(out, t([[right] * 2 + [0] * 4, [right] * 2 + [0] * 4, [wrong] * 6, [wrong] * 6]))
    # the token-weighted mean of the advantages is 0 and their token variance 1
    valid = LONG_WRONG_MASK.bool()
    assert out[valid].mean().item() == pytest.approx(0.0, abs=1e-12)
    assert out[valid].var().item() == pytest.approx(1.0)
    per_sequence = reinforce_pp(LONG_WRONG, torch.zeros(4, dtype=torch.long), eps=0.0)
    assert_close(per_sequence, t([1, 1, -1, -1]) * (0.5 / (1 / 3) ** 0.5))  # 0.866...


def test_reinforce_pp_token_whitening_ignores_rows_without_tokens():
    # a completion with no valid token (masked overlong, a stand-in) takes no part in the statistics
    mask = torch.tensor([[1, 1], [1, 0], [0, 0]])
    out = reinforce_pp(t([1.0, 0.0, 100.0]), torch.tensor([0, 1, 2]), mask, eps=0.0)
    # tokens: 1, 1, 0 -> mean 2/3, var ((1/3)^2 * 2 + (2/3)^2) / 2 = 1/3
    s = (1 / 3) ** 0.5
    assert_close(out, t([[(1 / 3) / s, (1 / 3) / s], [(-2 / 3) / s, 0], [0, 0]]))
    constant = reinforce_pp(t([0.3, 0.3, 7.0]), torch.tensor([0, 1, 2]), mask)
    assert torch.equal(constant, torch.zeros(3, 2, dtype=F64))


def test_reinforce_pp_baseline_hand_values():
    # group-centred x = dr_grpo values (their mean over the batch is 0); unbiased std(x) = sqrt(5/3) = 1.2909944487
    expected = t([-0.2581988897, -2.065591118, 0.5163977795, 0, 0, 0.2581988897, 0, -0.2581988897, 1.8073922282])
    assert_close(reinforce_pp_baseline(REWARDS, GROUPS, eps=0.0), expected)


def test_reinforce_pp_baseline_whitens_the_centred_rewards_over_tokens():
    """Two groups: x = r - mean_g(r) per completion, then whitened over tokens (verl's
    compute_reinforce_plus_plus_baseline_outcome_advantage). Group 0: r = 1 (1 token), 0 (3 tokens) -> x = +-0.5;
    group 1: r = 1, 1 -> x = 0 (2 tokens each). Tokens: 0.5, -0.5 x3, 0 x4 -> mean -1/8,
    var = (0.625^2 + 3 * 0.375^2 + 4 * 0.125^2) / 7 = 0.875 / 7 = 1/8. The flat group 1 gets 0.125 / sqrt(1/8),
    not 0: the token-weighted mean of x is not 0 when lengths differ, and the whitening shifts it (as verl's and
    OpenRLHF's do)."""
    mask = torch.tensor([[1, 0, 0], [1, 1, 1], [1, 1, 0], [1, 1, 0]])
    out = reinforce_pp_baseline(t([1.0, 0.0, 1.0, 1.0]), torch.tensor([0, 0, 1, 1]), mask, eps=0.0)
    s = (1 / 8) ** 0.5
    a, b, c = 0.625 / s, -0.375 / s, 0.125 / s
    assert_close(out, t([[a, 0, 0], [b, b, b], [c, c, 0], [c, c, 0]]))


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo", "reinforce_pp", "reinforce_pp_baseline"])
def test_all_equal_and_singletons_give_exact_zero(name):
    fn = ADVANTAGE_ESTIMATORS.get(name)
    # 0.1 * 3 is not exactly representable: the mean would leave float residue without special-casing
    out = fn(torch.tensor([0.1, 0.1, 0.1, 0.1]), torch.tensor([5, 5, 5, 9]))
    assert torch.equal(out, torch.zeros(4))
    if name not in ("reinforce_pp", "reinforce_pp_baseline"):  # a constant group next to a varying one (the
        # REINFORCE++ estimators shift by the batch mean, so a flat group is 0 only when that mean is)
        out = fn(torch.tensor([0.1, 0.1, 0.1, 0.7, 0.2]), torch.tensor([5, 5, 5, 9, 9]))
        assert torch.equal(out[:3], torch.zeros(3))
        assert (out[3:] != 0).all()
    kwargs = {"eps": 0.0} if name in ("grpo", "reinforce_pp", "reinforce_pp_baseline") else {}
    assert torch.equal(fn(torch.tensor([0.3, 0.3]), torch.tensor([1, 1]), **kwargs), torch.zeros(2))
    single = fn(torch.tensor([3.0]), torch.tensor([0]))
    assert torch.equal(single, torch.zeros(1))
    empty = fn(torch.zeros(0), torch.zeros(0, dtype=torch.long))
    assert empty.shape == (0,)


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo", "reinforce_pp", "reinforce_pp_baseline"])
def test_estimators_accept_int_rewards_and_return_no_grad(name):
    fn = ADVANTAGE_ESTIMATORS.get(name)
    out = fn(torch.tensor([1, 0, 1, 1]), torch.tensor([2, 2, 4, 4]))
    assert out.dtype == torch.get_default_dtype()
    assert torch.isfinite(out).all()
    r = torch.tensor([1.0, 0.0], requires_grad=True)
    assert not fn(r, torch.tensor([0, 0])).requires_grad


def test_group_order_invariance():
    perm = torch.tensor([8, 2, 5, 0, 7, 1, 3, 6, 4])
    for name in ADVANTAGE_ESTIMATORS.names():
        fn = ADVANTAGE_ESTIMATORS[name]
        # the built-in estimators only: another test's plugin may have registered one with its own signature
        if ADVANTAGE_ESTIMATORS.info(name).get("needs_critic") or not fn.__module__.startswith("mmrft."):
            continue
        rewards = REWARDS
        if ADVANTAGE_ESTIMATORS.info(name).get("per_component"):  # GDPO: [N, K] reward columns
            rewards = torch.stack([REWARDS, REWARDS.flip(0)], dim=1)
        assert_close(fn(rewards[perm], GROUPS[perm] * 1000 - 7), fn(rewards, GROUPS)[perm])


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        grpo(torch.zeros(3), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError):
        grpo(torch.zeros(3), torch.zeros(3))  # float ids
    with pytest.raises(TypeError):
        dr_grpo(torch.zeros(3), torch.zeros(3, dtype=torch.long), normalize_std=False)


def test_gae_hand_values():
    rewards = t([[0, 0, 1, 5], [1, 1, 1, 1], [0, 100, 0, 2]])
    values = t([[0.5, 0.6, 0.7, 9], [3, 3, 3, 3], [1, 50, 0.5, 0.25]])
    mask = torch.tensor([[1, 1, 1, 0], [0, 0, 0, 0], [1, 0, 1, 1]])
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    # row 0: A2 = 1 - .7 = .3; A1 = (.9*.7 - .6) + .72*.3 = .246; A0 = (.9*.6 - .5) + .72*.246 = .21712
    # row 2 skips the masked t=1: A3 = 1.75; A2 = (.9*.25 - .5) + .72*1.75 = .985; A0 = (.9*.5 - 1) + .72*.985 = .1592
    assert_close(adv, t([[0.21712, 0.246, 0.3, 0], [0, 0, 0, 0], [0.1592, 0, 0.985, 1.75]]))
    assert_close(ret, t([[0.71712, 0.846, 1.0, 0], [0, 0, 0, 0], [1.1592, 0, 1.485, 2.0]]))


def test_gae_monte_carlo_limit_and_no_grad():
    values = t([[0.2, 0.3, 0.4, 0.0]]).requires_grad_()
    adv, ret = gae(t([[0, 0, 1, 0]]), values, torch.tensor([[True, True, True, False]]), gamma=1.0, lam=1.0)
    assert_close(adv, t([[0.8, 0.7, 0.6, 0.0]]))
    assert_close(ret, t([[1.0, 1.0, 1.0, 0.0]]))
    assert not adv.requires_grad and not ret.requires_grad


def test_broadcast_to_tokens():
    adv = t([1.5, -2.0, 0.25])
    mask = torch.tensor([[1, 1, 0], [0, 0, 0], [1, 0, 1]])
    assert_close(broadcast_to_tokens(adv, mask), t([[1.5, 1.5, 0], [0, 0, 0], [0.25, 0, 0.25]]))
    with pytest.raises(ValueError):
        broadcast_to_tokens(adv, mask[:2])


def test_outcome_token_rewards_put_the_reward_on_the_last_valid_token():
    from mmrft.algorithms import outcome_token_rewards

    rewards = t([1.0, -2.0, 5.0, 0.5])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]])
    out = outcome_token_rewards(rewards, mask)
    # row 2 has no valid token: its reward has nowhere to go
    assert_close(out, t([[0, 0, 1, 0], [-2, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0.5]]))


def test_outcome_token_rewards_subtract_the_kl_penalty_on_valid_tokens():
    from mmrft.algorithms import outcome_token_rewards

    rewards = t([1.0, 0.0])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    kl = t([[0.5, -1.0, 9.0], [0.1, 0.2, 0.3]])
    out = outcome_token_rewards(rewards, mask, kl, kl_coef=0.1)
    # row 0: -0.05, +0.1 + 1 (last valid), masked 9.0 ignored; row 1: -0.01, -0.02, -0.03 + 0
    assert_close(out, t([[-0.05, 1.1, 0.0], [-0.01, -0.02, -0.03]]))
    with pytest.raises(ValueError, match="kl must have"):
        outcome_token_rewards(rewards, mask, kl[:, :2], kl_coef=0.1)


def test_masked_whiten_hand_values():
    from mmrft.algorithms import masked_whiten

    x = t([[1.0, 3.0, 100.0], [5.0, 7.0, -50.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]])
    # valid 1, 3, 5, 7: mean 4, unbiased var (9 + 1 + 1 + 9) / 3 = 20 / 3 (as verl, OpenRLHF and torch.var)
    s = (20 / 3) ** 0.5
    assert_close(masked_whiten(x, mask, eps=0.0), t([[-3 / s, -1 / s, 0], [1 / s, 3 / s, 0]]))
    assert_close(masked_whiten(x, mask, shift_mean=False, eps=0.0), t([[-3 / s + 4, -1 / s + 4, 0], [1 / s + 4, 3 / s + 4, 0]]))
    # one valid entry / constant entries: centred, never NaN
    assert_close(masked_whiten(t([[2.0, 9.0]]), torch.tensor([[1, 0]])), t([[0.0, 0.0]]))
    assert_close(masked_whiten(t([[2.0, 2.0]]), torch.tensor([[1, 1]])), t([[0.0, 0.0]]))
    assert_close(masked_whiten(t([[2.0, 2.0]]), torch.tensor([[0, 0]])), t([[0.0, 0.0]]))
