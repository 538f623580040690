import math

import pytest
import torch
from torch.testing import assert_close

from mmrft.algorithms import (
    AGGREGATIONS,
    aggregate,
    aggregation_denominators,
    broadcast_to_tokens,
    POLICY_LOSSES,
    gspo,
    masked_mean,
    ppo_clip,
    value_loss,
)

F64 = torch.float64
NEG_INF = float("-inf")


def t(values, dtype=F64):
    return torch.tensor(values, dtype=dtype)


# --------------------------------------------------------------------------- masked_mean
def test_masked_mean():
    x = t([[1.0, 2.0], [3.0, math.inf]])
    mask = torch.tensor([[1, 0], [1, 0]])
    assert_close(masked_mean(x, mask), t(2.0))
    assert_close(masked_mean(x, mask, dim=-1), t([1.0, 3.0]))
    assert_close(masked_mean(x, mask, dim=0), t([2.0, 0.0]))  # empty column -> 0
    assert_close(masked_mean(x, torch.zeros(2, 2)), t(0.0))

    y = t([[1.0, math.nan]]).requires_grad_()
    out = masked_mean(y, torch.tensor([[True, False]]))
    out.backward()
    assert_close(out.detach(), t(1.0))
    assert_close(y.grad, t([[1.0, 0.0]]))


# --------------------------------------------------------------------------- ppo_clip
def _ppo_case():
    # token ratios: row0 (A=+1) 1.5, 0.5, 1.1, pad; row1 (A=-2) 0.5, 1.5, 4.0, 0.9; row2 fully masked.
    old = t([[-1.0, -1.0, -1.0, NEG_INF], [-2.0, -2.0, -2.0, -2.0], [NEG_INF] * 4])
    ln = math.log
    log_ratio = t([[ln(1.5), ln(0.5), ln(1.1), 0.0], [ln(0.5), ln(1.5), ln(4.0), ln(0.9)], [0.0] * 4])
    logp = (old + log_ratio).requires_grad_()  # -inf on padding: must not create NaN
    adv = t([[1.0] * 4, [-2.0] * 4, [5.0] * 4])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]])
    return logp, old, adv, mask


def test_ppo_clip_hand_values_and_metrics():
    logp, old, adv, mask = _ppo_case()
    loss, m = ppo_clip(logp, old, adv, mask)
    # row0: max(-1.5,-1.2)=-1.2 (clip high), max(-0.5,-0.8)=-0.5, -1.1
    # row1: max(1.0,1.6)=1.6 (clip low), max(3.0,2.4)=3.0, max(8.0,2.4)=8.0, 1.8
    assert_close(loss.detach(), t([[-1.2, -0.5, -1.1, 0], [1.6, 3.0, 8.0, 1.8], [0, 0, 0, 0]]))
    loss.sum().backward()
    # d/dlogp = -A * r on the unclipped branch, 0 where clipped
    assert_close(logp.grad, t([[0, -0.5, -1.1, 0], [0, 3.0, 8.0, 1.8], [0, 0, 0, 0]]))
    assert m["clip_frac_low"] == pytest.approx(1 / 7)
    assert m["clip_frac_high"] == pytest.approx(1 / 7)
    assert m["clip_frac_dual"] == 0.0
    assert m["clip_frac"] == pytest.approx(2 / 7)
    assert m["ratio_mean"] == pytest.approx(10.0 / 7)
    assert m["ratio_max"] == pytest.approx(4.0)
    assert m["ratio_min"] == pytest.approx(0.5)
    assert m["approx_kl"] == pytest.approx(0.3141600170910247)
    assert all(isinstance(v, float) for v in m.values())


def test_ppo_dual_clip_only_on_negative_advantages():
    logp, old, adv, mask = _ppo_case()
    loss, m = ppo_clip(logp, old, adv, mask, dual_clip=3.0)
    # ratio 4 with A=-2: min(8.0, -A*3 = 6.0) = 6.0; positive-advantage tokens untouched
    assert_close(loss.detach(), t([[-1.2, -0.5, -1.1, 0], [1.6, 3.0, 6.0, 1.8], [0, 0, 0, 0]]))
    loss.sum().backward()
    assert_close(logp.grad, t([[0, -0.5, -1.1, 0], [0, 3.0, 0.0, 1.8], [0, 0, 0, 0]]))
    assert m["clip_frac_dual"] == pytest.approx(1 / 7)
    assert m["clip_frac"] == pytest.approx(3 / 7)
    # a huge ratio with A > 0 is handled by the normal clip, never by the dual clip
    loss2, m2 = ppo_clip(t([[math.log(5.0)]]), t([[0.0]]), t([[2.0]]), torch.ones(1, 1), dual_clip=3.0)
    assert_close(loss2, t([[-2.4]]))
    assert m2["clip_frac_dual"] == 0.0 and m2["clip_frac_high"] == 1.0
    with pytest.raises(ValueError):
        ppo_clip(t([[0.0]]), t([[0.0]]), t([[1.0]]), torch.ones(1, 1), dual_clip=0.5)


def test_ppo_clip_higher():
    logp = t([[math.log(1.25), math.log(1.3), math.log(0.75)]])
    zeros, ones = torch.zeros(1, 3, dtype=F64), torch.ones(1, 3)
    adv = t([[1.0, 1.0, -1.0]])
    loss, m = ppo_clip(logp, zeros, adv, ones, clip_low=0.2, clip_high=0.28)
    assert_close(loss, t([[-1.25, -1.28, 0.8]]))
    assert m["clip_frac_high"] == pytest.approx(1 / 3) and m["clip_frac_low"] == pytest.approx(1 / 3)
    loss, m = ppo_clip(logp, zeros, adv, ones)  # symmetric 0.2
    assert_close(loss, t([[-1.2, -1.2, 0.8]]))
    assert m["clip_frac_high"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_ppo_extreme_ratios_stay_finite(dtype):
    old = torch.zeros(2, 4, dtype=dtype)
    logp = torch.tensor([[20.0, -20.0, 20.0, -20.0], [100.0, -100.0, 100.0, -100.0]], dtype=dtype).requires_grad_()
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]] * 2, dtype=dtype)
    mask = torch.ones(2, 4)
    e20, em20 = 485165195.4097903, 2.061153622438558e-09
    loss, m = ppo_clip(logp, old, adv, mask)
    # ±100 is clamped to ±20 before exp, so both rows agree
    row = torch.tensor([-1.2, -em20, e20, 0.8], dtype=dtype)
    assert_close(loss.detach(), torch.stack([row, row]), rtol=1e-6, atol=1e-6)
    loss.sum().backward()
    assert torch.isfinite(logp.grad).all()
    assert all(math.isfinite(v) for v in m.values())
    loss_d, _ = ppo_clip(logp, old, adv, mask, dual_clip=3.0)
    assert_close(loss_d.detach()[:, 2], torch.tensor([3.0, 3.0], dtype=dtype))


def test_ppo_accepts_sequence_advantages_and_registry():
    logp = t([[math.log(1.5), 0.0], [0.0, 0.0]])
    loss_tok, _ = ppo_clip(logp, torch.zeros(2, 2, dtype=F64), t([[2.0, 2.0], [-1.0, -1.0]]), torch.ones(2, 2))
    loss_seq, _ = POLICY_LOSSES["ppo_clip"](logp, torch.zeros(2, 2, dtype=F64), t([2.0, -1.0]), torch.ones(2, 2))
    assert_close(loss_seq, loss_tok)
    assert_close(loss_seq, t([[-2.4, -2.0], [1.0, 1.0]]))


def test_all_masked_batch_metrics_are_zero():
    loss, m = ppo_clip(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2, 3), torch.zeros(2, 3))
    assert torch.equal(loss, torch.zeros(2, 3))
    assert all(v == 0.0 for v in m.values())


# --------------------------------------------------------------------------- gspo
def _gspo_case():
    old = t([[-1.0, -1.0, -1.0], [-0.5, -0.5, -0.5], [NEG_INF] * 3])
    # row0 valid log-ratios 0.1, 0.3 (mean 0.2); row1 -0.9, 0, 0 (mean -0.3); row2 fully masked
    logp = (old + t([[0.1, 0.3, 7.0], [-0.9, 0.0, 0.0], [0.0] * 3])).requires_grad_()
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [0, 0, 0]])
    adv = t([1.0, -1.0, 3.0])
    return logp, old, adv, mask


def test_gspo_clipped_sequences():
    logp, old, adv, mask = _gspo_case()
    s0, s1 = 1.2214027581601699, 0.7408182206817179  # exp(0.2), exp(-0.3)
    loss, m = gspo(logp, old, adv, mask, clip_low=0.2, clip_high=0.2)
    assert_close(loss.detach(), t([[-1.2, -1.2, 0], [0.8, 0.8, 0.8], [0, 0, 0]]))
    loss.sum().backward()
    assert torch.equal(logp.grad, torch.zeros(3, 3, dtype=F64))
    assert m["clip_frac_high"] == pytest.approx(2 / 5)
    assert m["clip_frac_low"] == pytest.approx(3 / 5)
    assert m["ratio_mean"] == pytest.approx((2 * s0 + 3 * s1) / 5)
    assert m["ratio_max"] == pytest.approx(s0) and m["ratio_min"] == pytest.approx(s1)


def test_gspo_unclipped_token_gradients_use_sequence_ratio():
    logp, old, adv, mask = _gspo_case()
    s0, s1 = 1.2214027581601699, 0.7408182206817179
    loss, m = gspo(logp, old, broadcast_to_tokens(adv, mask), mask, clip_low=0.3, clip_high=0.25)
    assert_close(loss.detach(), t([[-s0, -s0, 0], [s1, s1, s1], [0, 0, 0]]))
    loss.sum().backward()
    # every valid token gets -A_i * s_i, independent of its own token ratio
    assert_close(logp.grad, t([[-s0, -s0, 0], [s1, s1, s1], [0, 0, 0]]))
    assert m["clip_frac"] == 0.0


def test_gspo_paper_defaults():
    old = torch.zeros(2, 2, dtype=F64)
    logp = t([[0.0002, 0.0002], [0.0005, 0.0005]])  # s = exp(2e-4) inside, exp(5e-4) > 1 + 4e-4
    loss, m = gspo(logp, old, t([1.0, 1.0]), torch.ones(2, 2))
    assert_close(loss, t([[-1.0002000200013334] * 2, [-1.0004] * 2]))
    assert m["clip_frac_high"] == pytest.approx(0.5)


def test_gspo_matches_sequence_level_objective():
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([5, 2, 4, 1])
    mask = torch.arange(5)[None] < lengths[:, None]
    old = torch.randn(4, 5, generator=g, dtype=F64) - 2.0
    logp = (old + 0.15 * torch.randn(4, 5, generator=g, dtype=F64)).requires_grad_()
    adv = t([1.0, -0.5, -1.5, 2.0])

    loss_mat, _ = gspo(logp, old, adv, mask, clip_low=0.1, clip_high=0.1)
    aggregate(loss_mat, mask, "seq-mean-token-mean").backward()
    grad_token_form = logp.grad.clone()

    # reference: the paper's sequence objective -(1/G) sum_i min(s_i A_i, clip(s_i) A_i)
    logp.grad = None
    m = mask.to(F64)
    s = torch.exp(((logp - old) * m).sum(-1) / m.sum(-1))
    ref = -torch.minimum(s * adv, s.clamp(0.9, 1.1) * adv).mean()
    ref.backward()
    assert_close(grad_token_form, logp.grad)
    assert_close(aggregate(loss_mat, mask, "seq-mean-token-mean").detach(), ref.detach())


def test_gspo_extreme_and_empty_rows_finite():
    logp = t([[20.0, 20.0], [-20.0, 0.0], [0.0, 0.0]]).requires_grad_()
    loss, m = gspo(logp, torch.zeros(3, 2, dtype=F64), t([-1.0, 1.0, 1.0]), torch.tensor([[1, 1], [1, 0], [0, 0]]))
    assert torch.isfinite(loss).all() and loss[2].abs().sum() == 0
    loss.sum().backward()
    assert torch.isfinite(logp.grad).all()
    assert all(math.isfinite(v) for v in m.values())


# --------------------------------------------------------------------------- value loss
def test_value_loss_hand_values():
    values = t([[1.0, 2.0, 3.0, 2.0, 100.0]])
    old = t([[1.0, 1.0, 3.5, 3.0, 0.0]])
    returns = t([[2.0, 0.0, 3.0, 2.0, -100.0]])
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    loss, m = value_loss(values, old, returns, mask, clip_range=0.5)
    # last valid token: v=2 moved 1.0 from old=3, clipped to 2.5 -> 0.5 * 0.25
    assert_close(loss, t([[0.5, 2.0, 0.0, 0.125, 0.0]]))
    assert m["vf_clip_frac"] == pytest.approx(0.25)
    assert m["values_mean"] == pytest.approx(2.0)
    assert m["returns_mean"] == pytest.approx(1.75)
    assert m["vf_mse"] == pytest.approx(1.25)
    loss_nc, m_nc = value_loss(values, old, returns, mask, clip_range=None)
    assert_close(loss_nc, t([[0.5, 2.0, 0.0, 0.0, 0.0]]))
    assert m_nc["vf_clip_frac"] == 0.0


# --------------------------------------------------------------------------- aggregate
def _agg_case():
    loss = t([[1.0, 2.0, 3.0, 99.0], [4.0, 2.0, 99.0, 99.0], [99.0] * 4])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]])
    return loss, mask


def test_aggregate_hand_values():
    loss, mask = _agg_case()
    assert aggregation_denominators(mask) == (5.0, 2.0)
    assert_close(aggregate(loss, mask, "token-mean"), t(12 / 5))
    assert_close(aggregate(loss, mask, "seq-mean-token-mean"), t((2.0 + 3.0) / 2))
    assert_close(aggregate(loss, mask, "seq-mean-token-sum"), t((6.0 + 6.0) / 2))
    assert_close(aggregate(loss, mask, "seq-mean-token-sum-norm"), t(12 / (2 * 4)))
    assert_close(aggregate(loss, mask, "seq-mean-token-sum-norm", max_len=10), t(12 / 20))
    assert_close(aggregate(loss, mask, "token-mean", num_tokens=10), t(1.2))
    assert_close(aggregate(loss, mask, "seq-mean-token-mean", num_seqs=4), t(1.25))
    assert_close(aggregate(loss, mask, "seq-mean-token-sum", num_seqs=3), t(4.0))


def test_aggregate_unknown_mode_and_empty():
    loss, mask = _agg_case()
    with pytest.raises(ValueError) as err:
        aggregate(loss, mask, "sum")
    for mode in AGGREGATIONS:
        assert mode in str(err.value)
    for mode in AGGREGATIONS:
        x = torch.full((2, 3), 5.0, requires_grad=True)
        out = aggregate(x, torch.zeros(2, 3), mode)
        assert out.item() == 0.0 and out.requires_grad
        out.backward()
        assert torch.equal(x.grad, torch.zeros(2, 3))
        # an empty micro-batch with whole-batch denominators also contributes 0
        assert aggregate(x, torch.zeros(2, 3), mode, num_tokens=7, num_seqs=3, max_len=4).item() == 0.0


# --------------------------------------------------------------------------- gradient accumulation
SPLITS = [(0, 2), (2, 3), (3, 7)]  # unequal micro-batches; (2, 3) holds only the empty completion


@pytest.mark.parametrize("loss_name", ["ppo_clip", "gspo"])
@pytest.mark.parametrize("mode", AGGREGATIONS)
def test_gradient_accumulation_matches_full_batch(mode, loss_name):
    g = torch.Generator().manual_seed(0)
    n, t_max, d, v = 7, 6, 4, 5
    feats = torch.randn(n, t_max, d, generator=g, dtype=F64)
    tokens = torch.randint(v, (n, t_max), generator=g)
    lengths = torch.tensor([6, 1, 0, 4, 3, 6, 2])
    mask = torch.arange(t_max)[None] < lengths[:, None]
    policy = torch.nn.Linear(d, v, dtype=F64)
    with torch.no_grad():
        policy.weight.copy_(torch.randn(v, d, generator=g, dtype=F64))
        policy.bias.copy_(torch.randn(v, generator=g, dtype=F64))

    def logp_of(lo: int, hi: int, t_len: int) -> torch.Tensor:
        logits = policy(feats[lo:hi, :t_len])
        return torch.log_softmax(logits, -1).gather(-1, tokens[lo:hi, :t_len, None]).squeeze(-1)

    with torch.no_grad():
        old = logp_of(0, n, t_max) + 0.3 * torch.randn(n, t_max, generator=g, dtype=F64)
    adv = torch.randn(n, generator=g, dtype=F64)
    fn = POLICY_LOSSES[loss_name]
    if loss_name == "ppo_clip":
        opts = {"clip_low": 0.2, "clip_high": 0.28, "dual_clip": 3.0}
    else:
        opts = {"clip_low": 0.2, "clip_high": 0.2}

    loss_mat, metrics = fn(logp_of(0, n, t_max), old, broadcast_to_tokens(adv, mask), mask, **opts)
    full = aggregate(loss_mat, mask, mode, max_len=t_max)
    full.backward()
    full_grads = [p.grad.clone() for p in policy.parameters()]
    assert all(gr.abs().sum() > 0 for gr in full_grads)
    if loss_name == "ppo_clip":
        assert metrics["clip_frac"] > 0  # the comparison covers clipped tokens too

    policy.zero_grad()
    num_tokens, num_seqs = aggregation_denominators(mask)
    total = torch.zeros((), dtype=F64)
    for lo, hi in SPLITS:
        t_len = max(int(lengths[lo:hi].max()), 1)  # micro-batches are padded to their own length
        mb_mask = mask[lo:hi, :t_len]
        mb_adv = broadcast_to_tokens(adv[lo:hi], mb_mask)
        mb_loss, _ = fn(logp_of(lo, hi, t_len), old[lo:hi, :t_len], mb_adv, mb_mask, **opts)
        part = aggregate(mb_loss, mb_mask, mode, num_tokens=num_tokens, num_seqs=num_seqs, max_len=t_max)
        part.backward()
        total = total + part.detach()

    assert_close(total, full.detach())
    for got, want in zip((p.grad for p in policy.parameters()), full_grads):
        assert_close(got, want)
