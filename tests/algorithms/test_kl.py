import math

import pytest
import torch
from torch.testing import assert_close

from mmrft.algorithms import KL_ESTIMATORS, entropy_from_logits, kl_penalty

F64 = torch.float64


def t(values, dtype=F64):
    return torch.tensor(values, dtype=dtype)


LOGP = t([[-1.0, -2.0, -0.5]])
REF = t([[-1.5, -1.0, -0.5]])  # logp - ref = 0.5, -1.0, 0.0


def test_k1_k2_k3_hand_values():
    assert_close(kl_penalty(LOGP, REF, "k1"), t([[0.5, -1.0, 0.0]]))
    assert_close(kl_penalty(LOGP, REF, "k2"), t([[0.125, 0.5, 0.0]]))
    # exp(-0.5) + 0.5 - 1 ; exp(1) - 1 - 1 ; 0
    assert_close(kl_penalty(LOGP, REF, "k3"), t([[0.10653065971263342, 0.7182818284590451, 0.0]]))
    assert_close(kl_penalty(LOGP, REF), kl_penalty(LOGP, REF, "k3"))  # default kind


def test_aliases_and_unknown_kind():
    for alias, base in (("kl", "k1"), ("mse", "k2"), ("low_var_kl", "k3")):
        assert_close(kl_penalty(LOGP, REF, alias), kl_penalty(LOGP, REF, base))
    with pytest.raises(KeyError) as err:
        kl_penalty(LOGP, REF, "k4")
    for name in ("k1", "k2", "k3", "low_var_kl"):
        assert name in str(err.value)
    with pytest.raises(ValueError):
        kl_penalty(LOGP, REF[:, :2])


def test_k3_gradient_and_ref_is_constant():
    logp = LOGP.clone().requires_grad_()
    ref = REF.clone().requires_grad_()
    kl_penalty(logp, ref, "k3").sum().backward()
    # d/dlogp [exp(ref - logp) - (ref - logp) - 1] = 1 - exp(ref - logp)
    assert_close(logp.grad, t([[0.3934693402873666, -1.718281828459045, 0.0]]))
    assert ref.grad is None


def test_clamping():
    logp = t([[0.0, -30.0]])
    ref = t([[-30.0, 0.0]])
    assert_close(kl_penalty(logp, ref, "k1"), t([[10.0, -10.0]]))
    assert_close(kl_penalty(logp, ref, "k2"), t([[10.0, 10.0]]))
    # log-ratio -30 -> clamped to -10: exp(-10) + 10 - 1 ; +30 -> exp(10) - 11 -> result clamped to 10
    assert_close(kl_penalty(logp, ref, "k3"), t([[9.000045399929762, 10.0]]))
    assert_close(kl_penalty(logp, ref, "k1", clamp=None), t([[30.0, -30.0]]))
    assert_close(kl_penalty(logp, ref, "k2", clamp=None), t([[450.0, 450.0]]))
    assert_close(kl_penalty(logp, ref, "k3", clamp=None), t([[29.000000000000092, 10686474581493.463]]))


def test_extreme_values_finite_in_float32():
    logp = torch.tensor([[0.0, -200.0, -1e4]], requires_grad=True)
    ref = torch.tensor([[-200.0, 0.0, 0.0]])
    for kind in ("k1", "k2", "k3"):
        out = kl_penalty(logp, ref, kind)
        assert torch.isfinite(out).all()
        out.sum().backward()
        assert torch.isfinite(logp.grad).all()
        logp.grad = None


def test_k3_nonnegative():
    g = torch.Generator().manual_seed(0)
    logp, ref = torch.randn(50, generator=g) * 3, torch.randn(50, generator=g) * 3
    assert (KL_ESTIMATORS.get("k3")(logp, ref) >= 0).all()
    assert (KL_ESTIMATORS.get("k2")(logp, ref) >= 0).all()


def test_entropy_hand_values():
    ln3 = math.log(3.0)
    logits = t(
        [
            [0.0, 0.0, 0.0, 0.0],
            [0.0, ln3, -math.inf, -math.inf],
            [1000.0, 0.0, 0.0, 0.0],
            [1000.0, 1000.0 + ln3, -math.inf, -math.inf],
        ]
    )
    # uniform over 4 -> ln 4; p = (1/4, 3/4) -> 0.5623351446; one-hot-like -> ~0
    expected = t([1.3862943611198906, 0.5623351446188083, 0.0, 0.5623351446188083])
    assert_close(entropy_from_logits(logits), expected)


def test_entropy_shape_grad_and_dtype():
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(2, 3, 7, generator=g, dtype=F64) * 4).requires_grad_()
    h = entropy_from_logits(logits)
    assert h.shape == (2, 3)
    h.sum().backward()
    grad = logits.grad.clone()
    # reference: -sum p log p via log_softmax
    logits.grad = None
    ref = -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(-1)
    ref.sum().backward()
    assert_close(h.detach(), ref.detach())
    assert_close(grad, logits.grad)

    masked = torch.tensor([[0.0, 0.0, -math.inf]], requires_grad=True)
    h = entropy_from_logits(masked)
    h.sum().backward()
    assert_close(h.detach(), torch.tensor([0.6931471805599453]))
    assert torch.isfinite(masked.grad).all()

    assert entropy_from_logits(torch.zeros(2, 4, dtype=torch.bfloat16)).dtype == torch.float32
