"""Rollout corrections against hand-computed weights (mmrft.algorithms.correction)."""

import math

import pytest
import torch

from mmrft.algorithms.correction import correction_metrics, sampler_log_ratio
from mmrft.algorithms.registry import ROLLOUT_CORRECTIONS

# two rows; row 0 has per-token ratios 0.25, 1.5, 4 (product 1.5, geometric mean 1.5^(1/3) = 1.145), its last
# column is padding; row 1 has ratios 2, 2 (product 4, geometric mean 2) and two padding columns
LOG_RATIO = torch.tensor([[math.log(0.25), math.log(1.5), math.log(4.0), 0.0],
                          [math.log(2.0), math.log(2.0), 0.0, 0.0]])
MASK = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])

EXPECTED = {
    ("none", ()): [[1, 1, 1, 0], [1, 1, 0, 0]],
    # min(rho_t, 2)
    ("tis", (("cap", 2.0),)): [[0.25, 1.5, 2, 0], [2, 2, 0, 0]],
    # min(prod, 3): row 0 1.5, row 1 min(4, 3) = 3
    ("seq_tis", (("cap", 3.0),)): [[1.5, 1.5, 1.5, 0], [3, 3, 0, 0]],
    # rho_t if rho_t <= 3: the 4 goes
    ("token_mask", (("cap", 3.0),)): [[0.25, 1.5, 0, 0], [2, 2, 0, 0]],
    # prod if prod <= 3: row 1 (4) goes
    ("seq_mask", (("cap", 3.0),)): [[1.5, 1.5, 1.5, 0], [0, 0, 0, 0]],
    # rho_t in [0.5, 5]: the 0.25 goes
    ("icepop", (("low", 0.5), ("high", 5.0))): [[0, 1.5, 4, 0], [2, 2, 0, 0]],
    # geometric means 1.145 and 2 are in [0.5, 5]: token TIS at 5 keeps every ratio
    ("seq_mask_tis", (("low", 0.5), ("high", 5.0))): [[0.25, 1.5, 4, 0], [2, 2, 0, 0]],
    # band [0.5, 1.5]: row 1's geometric mean 2 is outside (dropped); row 0 kept, token ratios truncated at 1.5
    ("seq_mask_tis", (("low", 0.5), ("high", 1.5))): [[0.25, 1.5, 1.5, 0], [0, 0, 0, 0]],
}


@pytest.mark.parametrize("name,options", list(EXPECTED))
def test_weights_by_hand(name, options):
    weights = ROLLOUT_CORRECTIONS[name](LOG_RATIO, MASK, **dict(options))
    torch.testing.assert_close(weights, torch.tensor(EXPECTED[(name, options)], dtype=torch.float32))


def test_defaults_are_the_papers():
    # tis C = 2 (Yao et al.); IcePop's band [0.5, 5]
    torch.testing.assert_close(ROLLOUT_CORRECTIONS["tis"](LOG_RATIO, MASK),
                               torch.tensor(EXPECTED[("tis", (("cap", 2.0),))]))
    torch.testing.assert_close(ROLLOUT_CORRECTIONS["icepop"](LOG_RATIO, MASK),
                               torch.tensor(EXPECTED[("icepop", (("low", 0.5), ("high", 5.0)))]))


def test_log_ratio_ignores_padding_and_unknown_sampler_logprobs():
    trainer = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.5, -9.0]])
    sampler = torch.tensor([[-1.5, float("nan"), -3.0], [float("-inf"), -1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    lr = sampler_log_ratio(trainer, sampler, mask)
    # 0.5; NaN (no sampler log-prob) -> 0; 0; -inf sampler -> inf difference -> 0; 0.5; padding -> 0
    torch.testing.assert_close(lr, torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]))


def test_huge_sequence_ratios_stay_finite():
    lr = torch.full((1, 50), 5.0)  # prod = e^250 without the clamp
    mask = torch.ones(1, 50)
    for name in ROLLOUT_CORRECTIONS:
        w = ROLLOUT_CORRECTIONS[name](lr, mask)
        assert torch.isfinite(w).all(), name
    assert float(ROLLOUT_CORRECTIONS["seq_tis"](lr, mask)[0, 0]) == 3.0
    assert float(ROLLOUT_CORRECTIONS["seq_mask"](lr, mask).abs().sum()) == 0.0


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="cap"):
        ROLLOUT_CORRECTIONS["tis"](LOG_RATIO, MASK, cap=0.0)
    with pytest.raises(ValueError, match="low"):
        ROLLOUT_CORRECTIONS["icepop"](LOG_RATIO, MASK, low=3.0, high=2.0)


def test_metrics_by_hand():
    lr = torch.tensor([[math.log(2.0), 0.0, math.log(0.5)]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    weights = torch.tensor([[0.0, 1.0, 0.0]])
    m = correction_metrics(lr, weights, mask)
    # k3 = rho - 1 - log rho: (2 - 1 - ln 2 + 0) / 2 valid tokens
    assert m["mismatch_kl"] == pytest.approx((1 - math.log(2.0)) / 2)
    assert m["mismatch_logp_abs"] == pytest.approx(math.log(2.0) / 2)
    assert m["is_weight"] == pytest.approx(0.5)
    assert m["is_masked"] == pytest.approx(0.5)
