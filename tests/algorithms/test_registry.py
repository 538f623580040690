import pytest
import torch

from mmrft.algorithms import (
    ADVANTAGE_ESTIMATORS,
    AGGREGATIONS,
    KL_ESTIMATORS,
    POLICY_LOSSES,
    aggregate,
    gae,
    grpo,
    k3,
    options_for,
    ppo_clip,
    register_advantage_estimator,
    register_aggregation,
    register_policy_loss,
)
from mmrft.registry import Registry


def test_builtin_names():
    # (subset: tests that load a user plugin add their own names to the process-wide registries)
    builtin = lambda reg: [n for n in reg.names() if reg[n].__module__.startswith("mmrft.")]  # noqa: E731
    assert builtin(ADVANTAGE_ESTIMATORS) == ["bnpo", "dr_grpo", "gae", "gdpo", "grpo", "reinforce_pp", "reinforce_pp_baseline",
                                             "rloo"]
    assert builtin(POLICY_LOSSES) == ["cispo", "clip_cov", "gmpo", "gpg", "gspo", "kl_cov", "ppo_clip", "sapo", "vespo"]
    assert builtin(AGGREGATIONS) == ["seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm",
                                     "token-mean"]
    for name in ("k1", "k2", "k3", "kl", "mse", "low_var_kl"):
        assert name in KL_ESTIMATORS
    assert isinstance(ADVANTAGE_ESTIMATORS, Registry)
    assert ADVANTAGE_ESTIMATORS["grpo"] is grpo and ADVANTAGE_ESTIMATORS["gae"] is gae
    assert POLICY_LOSSES["ppo_clip"] is ppo_clip
    assert KL_ESTIMATORS["low_var_kl"] is k3


def test_estimators_say_what_they_need():
    """The trainer reads these facts instead of keeping its own lists of names."""
    groups = {n for n in ADVANTAGE_ESTIMATORS if ADVANTAGE_ESTIMATORS.info(n).get("needs_groups")}
    assert {"grpo", "dr_grpo", "rloo", "reinforce_pp_baseline"} <= groups and "reinforce_pp" not in groups
    critic = {n for n in ADVANTAGE_ESTIMATORS if ADVANTAGE_ESTIMATORS.info(n).get("needs_critic")}
    assert "gae" in critic and "grpo" not in critic


def test_unknown_name_lists_known_names():
    with pytest.raises(KeyError) as err:
        ADVANTAGE_ESTIMATORS["grpoo"]
    msg = str(err.value)
    assert "grpoo" in msg
    for name in ("dr_grpo", "grpo", "reinforce_pp", "reinforce_pp_baseline", "rloo"):
        assert name in msg
    with pytest.raises(KeyError, match="gspo.*ppo_clip"):
        POLICY_LOSSES["ppo"]
    with pytest.raises(ValueError, match="unknown loss aggregation mode 'mean'.*token-mean"):
        aggregate(torch.ones(1, 2), torch.ones(1, 2), "mean")


def test_user_registration_of_estimator_loss_and_aggregation():
    @register_advantage_estimator("test_sign_only", needs_groups=True)
    def sign_only(rewards, group_ids, mask=None):
        return torch.sign(rewards - 0.5)

    @register_policy_loss("test_pg")
    def pg(logp, old_logp, advantages, mask):
        return -(advantages * logp) * mask, {}

    @register_aggregation("test-sum")
    def total(losses, valid, num_tokens, num_seqs, max_len):
        return losses.sum()

    try:
        out = ADVANTAGE_ESTIMATORS["test_sign_only"](torch.tensor([1.0, 0.0]), torch.tensor([0, 0]))
        torch.testing.assert_close(out, torch.tensor([1.0, -1.0]))
        assert ADVANTAGE_ESTIMATORS.info("test_sign_only") == {"needs_groups": True, "needs_critic": False,
                                                                 "per_component": False}
        loss_mat, metrics = POLICY_LOSSES["test_pg"](
            torch.tensor([[-1.0, -2.0]]), torch.zeros(1, 2), torch.tensor([[2.0, 2.0]]), torch.tensor([[1.0, 0.0]])
        )
        torch.testing.assert_close(loss_mat, torch.tensor([[2.0, 0.0]]))
        assert metrics == {}
        # a registered aggregation is a mode of `aggregate` (invalid tokens zeroed before it sees them)
        loss = aggregate(torch.tensor([[1.0, 5.0], [2.0, 3.0]]), torch.tensor([[1, 0], [1, 1]]), "test-sum")
        assert loss.item() == pytest.approx(6.0)
    finally:
        ADVANTAGE_ESTIMATORS.unregister("test_sign_only")
        POLICY_LOSSES.unregister("test_pg")
        AGGREGATIONS.unregister("test-sum")
    assert "test_sign_only" not in ADVANTAGE_ESTIMATORS


def test_options_for_passes_the_knobs_a_function_names():
    knobs = {"clip_low": 0.1, "clip_high": 0.3, "dual_clip": 3.0, "kl_coef": 0.5}
    # ppo_clip names clip_low, clip_high, dual_clip and log_ratio_clamp: it gets the first three
    assert options_for(ppo_clip, knobs) == {"clip_low": 0.1, "clip_high": 0.3, "dual_clip": 3.0}
    # extra options add (or override) keyword options
    assert options_for(ppo_clip, knobs, {"log_ratio_clamp": 5.0, "clip_low": 0.05}) == {
        "clip_low": 0.05, "clip_high": 0.3, "dual_clip": 3.0, "log_ratio_clamp": 5.0}

    def user_loss(logp, old_logp, advantages, mask, *, kl_coef=0.0, beta=1.0):
        return logp, {}

    assert options_for(user_loss, knobs, {"beta": 2.0}) == {"kl_coef": 0.5, "beta": 2.0}
    with pytest.raises(KeyError, match=r"algorithm.policy_loss_options: user_loss has no option 'gamma' "
                                       r"\(accepted: beta, kl_coef\)"):
        options_for(user_loss, knobs, {"gamma": 1.0}, what="algorithm.policy_loss_options")

    def takes_anything(logp, old_logp, advantages, mask, **options):
        return logp, options

    assert options_for(takes_anything, knobs, {"gamma": 1.0}) == {"gamma": 1.0}
    # positional parameters are never filled from knobs
    assert options_for(grpo, {"mask": 1, "eps": 0.5}) == {"eps": 0.5}
