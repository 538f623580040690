"""The second wave of policy losses (CISPO, SAPO, GMPO, GPG, VESPO, Clip-Cov, KL-Cov) against hand-computed values."""

import math

import pytest
import torch
from torch.testing import assert_close

from mmrft.algorithms import (
    ADVANTAGE_ESTIMATORS,
    POLICY_LOSSES,
    aggregate,
    broadcast_to_tokens,
    cispo,
    clip_cov,
    gmpo,
    gpg,
    gspo,
    kl_cov,
    sapo,
    vespo,
)

F64 = torch.float64
NEG_INF = float("-inf")
ln, exp = math.log, math.exp
NEW_LOSSES = ["cispo", "sapo", "gmpo", "gpg", "vespo", "clip_cov", "kl_cov"]


def t(values, dtype=F64):
    return torch.tensor(values, dtype=dtype)


def sigmoid(x):
    return 1.0 / (1.0 + exp(-x))


def test_new_losses_are_registered():
    for name in NEW_LOSSES:
        assert POLICY_LOSSES[name].__name__ == name
    # TRL's luspo and bnpo loss types are an aggregation / an advantage estimator here, not losses
    assert "luspo" not in POLICY_LOSSES and "bnpo" not in POLICY_LOSSES and "bnpo" in ADVANTAGE_ESTIMATORS


# --------------------------------------------------------------------------- CISPO
def _cispo_case():
    # ratios row0 (A=+2): 1.5, 0.5, 6.0; row1 (A=-1): 2.0, 0.9, padding (-inf log-probs there)
    old = t([[-1.0, -1.0, -1.0], [-1.0, -1.0, NEG_INF]])
    logp = (old + t([[ln(1.5), ln(0.5), ln(6.0)], [ln(2.0), ln(0.9), 0.0]])).requires_grad_()
    return logp, old, t([2.0, -1.0]), torch.tensor([[1, 1, 1], [1, 1, 0]])


def test_cispo_hand_values_gradient_through_logp_only():
    logp, old, adv, mask = _cispo_case()
    loss, m = cispo(logp, old, adv, mask, clip_low=0.2, clip_high=0.2)
    # weights w = clip(r, 0.8, 1.2): row0 1.2, 0.8, 1.2; row1 1.2, 0.9.  L = -w * A * logp
    w = t([[1.2, 0.8, 1.2], [1.2, 0.9, 0.0]])
    a = t([[2.0] * 3, [-1.0] * 3])
    lp = t([[-1 + ln(1.5), -1 + ln(0.5), -1 + ln(6.0)], [-1 + ln(2.0), -1 + ln(0.9), 0.0]])
    assert_close(loss.detach(), -w * a * lp)
    assert_close(loss.detach()[0, 0], t(-1.2 * 2 * (-1 + ln(1.5))))  # = 1.4268839...
    loss.sum().backward()
    # d/dlogp = -w * A (the weight is a constant): clipped tokens keep their gradient, unlike PPO-clip
    assert_close(logp.grad, t([[-2.4, -1.6, -2.4], [1.2, 0.9, 0.0]]))
    # truncated weights: 1.5, 6.0, 2.0 above 1.2; 0.5 below 0.8 (of 5 valid tokens)
    assert m["clip_frac_high"] == pytest.approx(3 / 5)
    assert m["clip_frac_low"] == pytest.approx(1 / 5)
    assert m["clip_frac"] == pytest.approx(4 / 5)
    assert m["ratio_max"] == pytest.approx(6.0) and m["ratio_min"] == pytest.approx(0.5)
    assert m["ratio_mean"] == pytest.approx((1.5 + 0.5 + 6.0 + 2.0 + 0.9) / 5)
    # k3: mean(r - 1 - ln r)
    k3 = sum(r - 1 - ln(r) for r in (1.5, 0.5, 6.0, 2.0, 0.9)) / 5
    assert m["approx_kl"] == pytest.approx(k3)


def test_cispo_paper_defaults_no_lower_bound():
    logp, old, adv, mask = _cispo_case()
    loss, m = cispo(logp, old, adv, mask)  # clip_low=1 (bound 0: none), clip_high=4 (weight <= 5)
    loss.sum().backward()
    assert_close(logp.grad, t([[-3.0, -1.0, -10.0], [2.0, 0.9, 0.0]]))  # -A * [1.5, 0.5, 5.0 | 2.0, 0.9]
    assert m["clip_frac_high"] == pytest.approx(1 / 5) and m["clip_frac_low"] == 0.0


def test_cispo_on_policy_is_reinforce():
    logp = t([[-0.5, -2.0]]).requires_grad_()
    loss, _ = cispo(logp, logp.detach(), t([3.0]), torch.ones(1, 2))
    assert_close(loss.detach(), t([[1.5, 6.0]]))  # -1 * 3 * logp
    loss.sum().backward()
    assert_close(logp.grad, t([[-3.0, -3.0]]))


# --------------------------------------------------------------------------- SAPO
def test_sapo_hand_values_and_gradient():
    # tokens: (r, A): (1, +1), (2, +1), (1, -1), (0.5, -1); tau_pos = 1, tau_neg = 1.05
    old = torch.zeros(1, 4, dtype=F64)
    logp = t([[0.0, ln(2.0), 0.0, ln(0.5)]]).requires_grad_()
    adv = t([[1.0, 1.0, -1.0, -1.0]])
    loss, m = sapo(logp, old, adv, torch.ones(1, 4))
    # f(r; tau) = sigmoid(tau (r - 1)) * 4 / tau ;  L = -f * A
    s1, s3 = sigmoid(1.0), sigmoid(1.05 * -0.5)
    want = [-2.0, -4 * s1, 2 / 1.05, 4 * s3 / 1.05]  # -2, -2.9242344, 1.9047619, 1.4159...
    assert_close(loss.detach(), t([want]))
    loss.sum().backward()
    # dL/dlogp = -A * 4 s (1 - s) * r : on-policy (r = 1, s = 1/2) exactly -A, the plain policy gradient
    grads = [-1.0, -4 * s1 * (1 - s1) * 2.0, 1.0, 4 * s3 * (1 - s3) * 0.5]
    assert_close(logp.grad, t([grads]))
    assert m["gate_weight_mean"] == pytest.approx((1 + 4 * s1 * (1 - s1) + 1 + 4 * s3 * (1 - s3)) / 4)
    assert m["ratio_max"] == pytest.approx(2.0)


def test_sapo_negative_temperature_attenuates_faster():
    logp, old = t([[ln(3.0)]]).requires_grad_(), t([[0.0]])
    g = {}
    for tau in (1.0, 1.05, 2.0):
        logp.grad = None
        sapo(logp, old, t([-1.0]), torch.ones(1, 1), tau_neg=tau)[0].sum().backward()
        g[tau] = logp.grad.item()
    assert g[1.0] > g[1.05] > g[2.0] > 0.0  # the gradient fades as tau_neg grows
    with pytest.raises(ValueError):
        sapo(logp, old, t([1.0]), torch.ones(1, 1), tau_pos=0.0)


# --------------------------------------------------------------------------- GMPO
def _gmpo_case():
    # log-ratios: row0 (A=+1): 0.1, 0.6, pad; row1 (A=-1): -0.6, 0.2, 0.5; row2 fully masked
    old = t([[-1.0, -1.0, NEG_INF], [-2.0, -2.0, -2.0], [NEG_INF] * 3])
    logp = (old + t([[0.1, 0.6, 0.0], [-0.6, 0.2, 0.5], [0.0] * 3])).requires_grad_()
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [0, 0, 0]])
    return logp, old, t([1.0, -1.0, 4.0]), mask


def test_gmpo_geometric_mean_with_sign_aware_log_clip():
    logp, old, adv, mask = _gmpo_case()
    loss, m = gmpo(logp, old, adv, mask)  # log-space clip (-0.4, 0.4)
    # row0, A>0: min(l, clip(l)) = 0.1, 0.4 -> mean 0.25 -> s0 = e^0.25, L0 = -e^0.25
    # row1, A<0: max(l, clip(l)) = -0.4, 0.2, 0.5 -> mean 0.1 -> s1 = e^0.1, L1 = +e^0.1
    s0, s1 = exp(0.25), exp(0.1)
    assert_close(loss.detach(), t([[-s0, -s0, 0.0], [s1, s1, s1], [0.0] * 3]))
    agg = aggregate(loss, mask, "seq-mean-token-mean")
    assert_close(agg.detach(), t((-s0 + s1) / 2))  # the paper's 1/G sum_i L_i
    agg.backward()
    # d/dl_t = -A_i s_i / |o_i| / G on unclipped tokens, 0 on clipped ones (row0 t1, row1 t0)
    assert_close(logp.grad, t([[-s0 / 4, 0.0, 0.0], [0.0, s1 / 6, s1 / 6], [0.0] * 3]))
    assert m["clip_frac_high"] == pytest.approx(1 / 5) and m["clip_frac_low"] == pytest.approx(1 / 5)
    assert m["clip_frac"] == pytest.approx(2 / 5)
    assert m["seq_ratio_mean"] == pytest.approx((s0 + s1) / 2)


def test_gmpo_matches_product_form_of_the_paper():
    g = torch.Generator().manual_seed(3)
    lengths = torch.tensor([4, 1, 3])
    mask = torch.arange(4)[None] < lengths[:, None]
    old = torch.randn(3, 4, generator=g, dtype=F64) - 2.0
    logp = (old + 0.5 * torch.randn(3, 4, generator=g, dtype=F64)).requires_grad_()
    adv = t([1.5, -0.5, -2.0])
    aggregate(gmpo(logp, old, adv, mask, clip_low=0.3, clip_high=0.3)[0], mask, "seq-mean-token-mean").backward()
    grad = logp.grad.clone()
    # reference: 1/G sum_i -A_i (prod_t min[w^sgn, clip(w^sgn, e^-0.3, e^0.3)]^sgn)^(1/|o_i|)
    # (symmetric range as in the paper: with an asymmetric one its w^sgn form swaps the bounds for A < 0)
    logp.grad = None
    ref = 0.0
    for i in range(3):
        n, a = int(lengths[i]), float(adv[i])
        sgn = 1.0 if a > 0 else -1.0
        w = torch.exp(logp[i, :n] - old[i, :n])
        ws = w ** sgn
        prod = torch.prod(torch.minimum(ws, ws.clamp(exp(-0.3), exp(0.3))) ** sgn)
        ref = ref - a * prod ** (1.0 / n)
    (ref / 3).backward()
    assert_close(grad, logp.grad)


def test_gmpo_is_robust_to_a_token_outlier():
    # one token with ratio e^5 and A < 0 (unclipped on that side): GMPO's weight grows like e^(5/|o|), not e^5
    old = torch.zeros(1, 5, dtype=F64)
    logp = t([[5.0, 0.0, 0.0, 0.0, 0.0]])
    loss, _ = gmpo(logp, old, t([-1.0]), torch.ones(1, 5))
    assert_close(loss[0, 0], t(exp(1.0)))


# --------------------------------------------------------------------------- GPG
def test_gpg_plain_policy_gradient():
    logp = t([[-0.5, -2.0], [-1.0, NEG_INF]]).requires_grad_()
    old = t([[-0.7, -2.0], [-1.0, 0.0]])
    loss, m = gpg(logp, old, t([2.0, -1.0]), torch.tensor([[1, 1], [1, 0]]))
    assert_close(loss.detach(), t([[1.0, 4.0], [-1.0, 0.0]]))  # -A * logp
    loss.sum().backward()
    assert_close(logp.grad, t([[-2.0, -2.0], [1.0, 0.0]]))  # -A, whatever the ratio
    assert m["ratio_max"] == pytest.approx(exp(0.2))


# --------------------------------------------------------------------------- VESPO
def test_vespo_gamma_weight_of_the_sequence_ratio():
    # row0 (A=+1, k=2, lambda=3): token ratios 4, 0.5 -> W = 2; row1 (A=-1, k=3, lambda=2): W = 0.5
    old = t([[-1.0, -1.0], [-1.0, NEG_INF]])
    logp = (old + t([[ln(4.0), ln(0.5)], [ln(0.5), 0.0]])).requires_grad_()
    mask = torch.tensor([[1, 1], [1, 0]])
    loss, m = vespo(logp, old, t([1.0, -1.0]), mask)
    # phi(W) = W^k exp(lambda (1 - W)): phi0 = 4 e^-3 = 0.19915, phi1 = 0.125 e^1 = 0.33979
    phi0, phi1 = 4 * exp(-3.0), 0.125 * exp(1.0)
    lp = [[-1 + ln(4.0), -1 + ln(0.5)], [-1 + ln(0.5), 0.0]]
    assert_close(loss.detach(), t([[-phi0 * lp[0][0], -phi0 * lp[0][1]], [phi1 * lp[1][0], 0.0]]))
    loss.sum().backward()
    assert_close(logp.grad, t([[-phi0, -phi0], [phi1, 0.0]]))  # phi is a constant: -phi * A
    assert m["phi_mean"] == pytest.approx((2 * phi0 + phi1) / 3)


def test_vespo_on_policy_is_reinforce_and_extremes_vanish():
    logp = t([[-0.5, -2.0]])
    assert_close(vespo(logp, logp, t([2.0]), torch.ones(1, 2))[0], gpg(logp, logp, t([2.0]), torch.ones(1, 2))[0])
    # W = e^20 (clamped) or 1e-8 (clamped): phi = 0 (underflow), or ~e^3 * 1e-16: both finite and tiny
    old = torch.zeros(2, 3, dtype=F64)
    loss, m = vespo(t([[50.0, 50.0, 50.0], [-50.0, -50.0, -50.0]]), old, t([1.0, 1.0]), torch.ones(2, 3))
    assert torch.isfinite(loss).all() and loss.abs().max() < 1e-10
    assert all(math.isfinite(v) for v in m.values())


# --------------------------------------------------------------------------- LUSPO = gspo + seq-mean-token-sum
def test_luspo_is_gspo_summed_over_tokens():
    """TRL's loss_type="luspo": mean_i(|o_i| * L_i) with L_i GSPO's clipped sequence loss."""
    g = torch.Generator().manual_seed(5)
    lengths = torch.tensor([5, 2, 3])
    mask = torch.arange(5)[None] < lengths[:, None]
    old = torch.randn(3, 5, generator=g, dtype=F64) - 2.0
    logp = (old + 0.01 * torch.randn(3, 5, generator=g, dtype=F64)).requires_grad_()
    adv = t([1.0, -1.0, 0.5])
    loss_mat, _ = gspo(logp, old, adv, mask, clip_low=2e-3, clip_high=2.5e-3)
    luspo = aggregate(loss_mat, mask, "seq-mean-token-sum")
    luspo.backward()
    grad = logp.grad.clone()
    logp.grad = None
    m = mask.to(F64)
    s = torch.exp(((logp - old) * m).sum(-1) / m.sum(-1))
    per_seq = -torch.minimum(s * adv, s.clamp(1 - 2e-3, 1 + 2.5e-3) * adv)
    ref = (per_seq * m.sum(-1)).mean()
    ref.backward()
    assert_close(luspo.detach(), ref.detach())
    assert_close(grad, logp.grad)


# --------------------------------------------------------------------------- Clip-Cov / KL-Cov
def _cov_case(ratios):
    # A: row0 +1 (3 tokens), row1 -1 (2 tokens + padding); mean A = 0.2, so A - mean = 0.8 / -1.2
    # logp: row0 -1, -4, -2; row1 -7, -1; mean -3, so logp - mean = 2, -1, 1 | -4, 2
    # cov = 1.6, -0.8, 0.8 | 4.8, -2.4
    logp = t([[-1.0, -4.0, -2.0], [-7.0, -1.0, NEG_INF]]).requires_grad_()
    old = logp.detach() - t(ratios).log()
    return logp, old, t([1.0, -1.0]), torch.tensor([[1, 1, 1], [1, 1, 0]])


def test_clip_cov_cuts_in_band_tokens_not_clipped_by_ppo():
    # row0 t0 (cov 1.6, in the band) has r = 1.5 > 1.2 with A > 0: PPO clips it, so it is no candidate;
    # row1 t0 (cov 4.8) is the only one left: cut (max(1, int(2e-4 * 5)) = 1 token)
    logp, old, adv, mask = _cov_case([[1.5, 1.0, 1.0], [1.0, 1.0, 1.0]])
    loss, m = clip_cov(logp, old, adv, mask)
    # PPO: row0 max(-1.5, -1.2) = -1.2, -1, -1; row1 +1 (cut -> 0), +1
    assert_close(loss.detach(), t([[-1.2, -1.0, -1.0], [0.0, 1.0, 0.0]]))
    loss.sum().backward()
    assert_close(logp.grad, t([[0.0, -1.0, -1.0], [0.0, 1.0, 0.0]]))
    assert m["cov_clip_frac"] == pytest.approx(1 / 5)
    assert m["clip_frac_high"] == pytest.approx(1 / 5) and m["clip_frac"] == pytest.approx(1 / 5)
    # a band that holds neither: nothing cut
    loss, m = clip_cov(logp, old, adv, mask, clip_cov_lb=5.0, clip_cov_ub=9.0)
    assert_close(loss.detach(), t([[-1.2, -1.0, -1.0], [1.0, 1.0, 0.0]]))
    assert m["cov_clip_frac"] == 0.0


def test_clip_cov_random_choice_is_seeded():
    # on-policy: both in-band tokens (cov 1.6 and 4.8) are candidates, one is cut at random
    logp, old, adv, mask = _cov_case([[1.0] * 3] * 2)
    picks = []
    for seed in range(12):
        a, _ = clip_cov(logp, old, adv, mask, generator=torch.Generator().manual_seed(seed))
        b, _ = clip_cov(logp, old, adv, mask, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(a, b)
        cut = (a.detach() == 0) & mask.bool()
        assert int(cut.sum()) == 1 and bool(cut[0, 0] or cut[1, 0])
        picks.append(bool(cut[0, 0]))
    assert any(picks) and not all(picks)  # each candidate gets drawn
    # a larger ratio cuts both (int(0.4 * 5) = 2)
    loss, m = clip_cov(logp, old, adv, mask, clip_cov_ratio=0.4)
    assert_close(loss.detach(), t([[0.0, -1.0, -1.0], [0.0, 1.0, 0.0]]))
    assert m["cov_clip_frac"] == pytest.approx(2 / 5)
    with pytest.raises(ValueError):
        clip_cov(logp, old, adv, mask, clip_cov_ratio=0.0)


def test_kl_cov_penalises_top_covariance_tokens():
    # ratios: row0 1.5, 1, 1; row1 0.5, 1 (no clipping in KL-Cov)
    logp, old, adv, mask = _cov_case([[1.5, 1.0, 1.0], [0.5, 1.0, 1.0]])
    loss, m = kl_cov(logp, old, adv, mask)  # k = max(1, int(2e-3 * 5)) = 1: row1 t0 (cov 4.8)
    # L = -A r (+ |ln r| on row1 t0): -1.5, -1, -1 | 0.5 + ln 2, 1
    assert_close(loss.detach(), t([[-1.5, -1.0, -1.0], [0.5 + ln(2.0), 1.0, 0.0]]))
    loss.sum().backward()
    # d/dlogp: -A r + coef * sign(ln r): row1 t0 0.5 - 1
    assert_close(logp.grad, t([[-1.5, -1.0, -1.0], [-0.5, 1.0, 0.0]]))
    assert m["kl_cov_frac"] == pytest.approx(1 / 5)
    assert m["abs_log_ratio_mean"] == pytest.approx((ln(1.5) + ln(2.0)) / 5)
    # top-2 (int(0.4 * 5) = 2): also row0 t0 (cov 1.6), with coefficient 0.5
    loss, m = kl_cov(logp, old, adv, mask, kl_cov_ratio=0.4, ppo_kl_coef=0.5)
    assert_close(loss.detach(), t([[-1.5 + 0.5 * ln(1.5), -1.0, -1.0], [0.5 + 0.5 * ln(2.0), 1.0, 0.0]]))
    assert m["kl_cov_frac"] == pytest.approx(2 / 5)
    with pytest.raises(ValueError):
        kl_cov(logp, old, adv, mask, kl_cov_ratio=-1.0)


# --------------------------------------------------------------------------- edge cases, every new loss
@pytest.mark.parametrize("name", NEW_LOSSES)
def test_masked_rows_and_padding_never_leak(name):
    old = t([[-1.0, -2.0, NEG_INF], [NEG_INF] * 3, [-0.5, -0.5, -0.5]])
    logp = (old.nan_to_num(neginf=0.0) + t([[0.1, -0.2, 0.0], [0.0] * 3, [0.05, 0.0, -0.1]]))
    logp = torch.where(old == NEG_INF, torch.full_like(logp, NEG_INF), logp).requires_grad_()
    mask = torch.tensor([[1, 1, 0], [0, 0, 0], [1, 1, 1]])
    loss, m = POLICY_LOSSES[name](logp, old, t([1.0, 2.0, -1.0]), mask)
    assert torch.isfinite(loss).all() and (loss[mask == 0] == 0).all()
    for mode in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum"):
        logp.grad = None
        aggregate(loss if mode == "token-mean" else POLICY_LOSSES[name](logp, old, t([1.0, 2.0, -1.0]), mask)[0],
                  mask, mode).backward()
        assert torch.isfinite(logp.grad).all() and (logp.grad[mask == 0] == 0).all()
    assert all(isinstance(v, float) and math.isfinite(v) for v in m.values())


@pytest.mark.parametrize("name", NEW_LOSSES)
def test_empty_mask_gives_zero_loss_and_metrics(name):
    logp = torch.full((2, 3), NEG_INF, dtype=F64).requires_grad_()
    loss, m = POLICY_LOSSES[name](logp, torch.zeros(2, 3, dtype=F64), t([1.0, -1.0]), torch.zeros(2, 3))
    assert torch.equal(loss.detach(), torch.zeros(2, 3, dtype=F64))
    out = aggregate(loss, torch.zeros(2, 3), "token-mean")
    out.backward()
    assert out.item() == 0.0 and torch.equal(logp.grad, torch.zeros(2, 3, dtype=F64))
    assert all(isinstance(v, float) and v == 0.0 for v in m.values()), m


@pytest.mark.parametrize("name", NEW_LOSSES)
def test_sequence_and_token_advantages_agree(name):
    g = torch.Generator().manual_seed(7)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]])
    old = torch.randn(3, 4, generator=g, dtype=F64) - 1.5
    logp = old + 0.2 * torch.randn(3, 4, generator=g, dtype=F64)
    adv = t([0.7, -1.3, 0.4])
    kw = {"generator": torch.Generator().manual_seed(0)} if name == "clip_cov" else {}
    seq, _ = POLICY_LOSSES[name](logp, old, adv, mask, **kw)
    kw = {"generator": torch.Generator().manual_seed(0)} if name == "clip_cov" else {}
    tok, _ = POLICY_LOSSES[name](logp, old, broadcast_to_tokens(adv, mask), mask, **kw)
    assert_close(seq, tok)


@pytest.mark.parametrize("name", NEW_LOSSES)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_extreme_log_ratios_stay_finite(name, dtype):
    old = torch.zeros(2, 4, dtype=dtype)
    logp = torch.tensor([[100.0, -100.0, 30.0, -30.0], [60.0, 60.0, -60.0, 0.0]], dtype=dtype).requires_grad_()
    adv = torch.tensor([[1.0, -1.0, 1.0, -1.0], [-1.0, -1.0, 1.0, 1.0]], dtype=dtype)
    loss, m = POLICY_LOSSES[name](logp, old, adv, torch.ones(2, 4))
    assert torch.isfinite(loss).all()
    aggregate(loss, torch.ones(2, 4), "token-mean").backward()
    assert torch.isfinite(logp.grad).all()
    assert all(math.isfinite(v) for v in m.values())


@pytest.mark.parametrize("name", NEW_LOSSES)
def test_shape_errors(name):
    with pytest.raises(ValueError):
        POLICY_LOSSES[name](torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2), torch.ones(2, 3))
    with pytest.raises(ValueError):
        POLICY_LOSSES[name](torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3), torch.ones(2, 3))


# --------------------------------------------------------------------------- selected by config
NEW_PRESETS = ["cispo", "sapo", "gmpo", "gpg", "clip_cov", "kl_cov", "luspo", "bnpo"]


@pytest.mark.parametrize("name", NEW_PRESETS)
def test_preset_runs_its_estimator_loss_and_aggregation(name):
    from mmrft.config import load_config
    from mmrft.train.learn import advantage_options
    from mmrft.train.run import check_algorithm
    from mmrft.train.update import policy_loss_options

    cfg = load_config(None, [f"algorithm.name={name}", "rollout.group_size=4"])
    check_algorithm(cfg)  # the names resolve and every option is accepted
    algo = cfg.algorithm
    g = torch.Generator().manual_seed(11)
    rewards = t([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0])
    group_ids = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    mask = (torch.arange(6)[None] < torch.tensor([6, 3, 5, 1, 2, 6, 4, 6])[:, None]).long()
    adv = ADVANTAGE_ESTIMATORS[algo.advantage](rewards, group_ids, mask, **advantage_options(cfg))
    old = torch.randn(8, 6, generator=g, dtype=F64) - 2.0
    logp = (old + 0.05 * torch.randn(8, 6, generator=g, dtype=F64)).requires_grad_()
    loss_mat, metrics = POLICY_LOSSES[algo.policy_loss](logp, old, adv, mask, **policy_loss_options(algo))
    loss = aggregate(loss_mat, mask, algo.loss_agg_mode, max_len=6)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logp.grad).all() and logp.grad.abs().sum() > 0
    assert all(math.isfinite(v) for v in metrics.values())


def test_loss_options_by_config(tmp_path):
    from mmrft.config import load_config
    from mmrft.errors import ConfigError
    from mmrft.train.run import check_algorithm
    from mmrft.train.update import policy_loss_options

    for name in NEW_LOSSES:  # any new loss can be picked on top of another preset
        cfg = load_config(None, [f"algorithm.policy_loss={name}"])
        check_algorithm(cfg)
    cfg = load_config(None, ["algorithm.name=sapo", "algorithm.policy_loss_options={tau_neg: 2.0}"])
    assert policy_loss_options(cfg.algorithm) == {"tau_neg": 2.0}
    cfg = load_config(None, ["algorithm.name=cispo"])
    assert policy_loss_options(cfg.algorithm) == {"clip_low": 1.0, "clip_high": 4.0}
    cfg = load_config(None, ["algorithm.name=kl_cov", "algorithm.policy_loss_options={kl_cov_ratio: 2e-4}"])
    assert policy_loss_options(cfg.algorithm) == {"kl_cov_ratio": 2e-4}
    with pytest.raises(ConfigError, match="tau_pos"):
        check_algorithm(load_config(None, ["algorithm.name=gmpo", "algorithm.policy_loss_options={tau_pos: 1.0}"]))
