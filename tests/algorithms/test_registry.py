import pytest
import torch

from mmrft.algorithms import (
    ADVANTAGE_ESTIMATORS,
    KL_ESTIMATORS,
    POLICY_LOSSES,
    Registry,
    get_advantage_estimator,
    get_policy_loss,
    grpo,
    k3,
    ppo_clip,
    register_advantage_estimator,
    register_policy_loss,
)


def test_builtin_names():
    # (subset: tests that load a user plugin add their own names to the process-wide registries)
    builtin = lambda reg: [n for n in reg.names() if reg.get(n).__module__.startswith("mmrft.")]  # noqa: E731
    assert builtin(ADVANTAGE_ESTIMATORS) == ["dr_grpo", "grpo", "reinforce_pp", "reinforce_pp_baseline", "rloo"]
    assert builtin(POLICY_LOSSES) == ["gspo", "ppo_clip"]
    for name in ("k1", "k2", "k3", "kl", "mse", "low_var_kl"):
        assert name in KL_ESTIMATORS
    assert "gae" not in ADVANTAGE_ESTIMATORS
    assert get_advantage_estimator("grpo") is grpo
    assert get_policy_loss("ppo_clip") is ppo_clip
    assert KL_ESTIMATORS.get("low_var_kl") is k3


def test_unknown_name_lists_known_names():
    with pytest.raises(KeyError) as err:
        get_advantage_estimator("grpoo")
    msg = str(err.value)
    assert "grpoo" in msg
    for name in ("dr_grpo", "grpo", "reinforce_pp", "reinforce_pp_baseline", "rloo"):
        assert name in msg
    with pytest.raises(KeyError, match="gspo.*ppo_clip"):
        get_policy_loss("ppo")


def test_generic_registry():
    reg: Registry = Registry("thing")
    assert reg.names() == [] and len(reg) == 0
    with pytest.raises(KeyError, match="<none>"):
        reg.get("a")

    @reg.register("b")
    def fb():
        return "b"

    @reg.register("a")
    def fa():
        return "a"

    assert fb() == "b"  # decorator returns the function unchanged
    assert reg.names() == ["a", "b"] and list(reg) == ["a", "b"]
    assert "a" in reg and "c" not in reg
    assert reg.get("a") is fa
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(fb)
    reg.register("a", override=True)(fb)
    assert reg.get("a") is fb
    reg.unregister("a")
    assert "a" not in reg
    with pytest.raises(ValueError):
        reg.register("")


def test_user_registration_of_estimator_and_loss():
    @register_advantage_estimator("test_sign_only")
    def sign_only(rewards, group_ids):
        return torch.sign(rewards - 0.5)

    @register_policy_loss("test_pg")
    def pg(logp, old_logp, advantages, mask):
        return -(advantages * logp) * mask, {}

    try:
        est = get_advantage_estimator("test_sign_only")
        out = est(torch.tensor([1.0, 0.0]), torch.tensor([0, 0]))
        torch.testing.assert_close(out, torch.tensor([1.0, -1.0]))
        loss_mat, metrics = get_policy_loss("test_pg")(
            torch.tensor([[-1.0, -2.0]]), torch.zeros(1, 2), torch.tensor([[2.0, 2.0]]), torch.tensor([[1.0, 0.0]])
        )
        torch.testing.assert_close(loss_mat, torch.tensor([[2.0, 0.0]]))
        assert metrics == {}
    finally:
        ADVANTAGE_ESTIMATORS.unregister("test_sign_only")
        POLICY_LOSSES.unregister("test_pg")
    assert "test_sign_only" not in ADVANTAGE_ESTIMATORS
