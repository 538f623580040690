import pytest

from mmrft.rewards import CompositeReward, build_reward, get_reward, list_rewards, register_reward
from mmrft.rewards import registry

BUILTINS = ["answer_format", "choice", "count", "exact", "format", "iou", "math", "numeric"]


def test_builtins_listed():
    assert set(BUILTINS) <= set(list_rewards())


def test_unknown_name_lists_known_ones():
    with pytest.raises(KeyError) as e:
        get_reward("nope")
    for name in BUILTINS:
        assert name in str(e.value)


def test_module_function_reference_is_imported_and_registered():
    fn = get_reward("tests.rewards.user_rewards:half")
    assert fn("ok", {}) == 0.5
    assert "tests.rewards.user_rewards:half" in list_rewards()
    assert get_reward("tests.rewards.user_rewards:Namespace.nested")("", {}) == 0.25


@pytest.mark.parametrize(
    "ref", ["no_such_module_xyz:f", "tests.rewards.user_rewards:missing", ":f", "tests.rewards.user_rewards:"]
)
def test_bad_references(ref):
    with pytest.raises(KeyError):
        get_reward(ref)


def test_register_and_conflicts():
    @register_reward("test_registry_const")
    def const(completion, sample):
        return 1.0

    assert get_reward("test_registry_const") is const
    register_reward("test_registry_const")(const)  # same function again: fine
    with pytest.raises(ValueError):
        register_reward("test_registry_const")(lambda c, s: 0.0)
    register_reward("test_registry_const", override=True)(lambda c, s: 0.0)
    assert get_reward("test_registry_const")("", {}) == 0.0
    registry.REWARDS.unregister("test_registry_const")


def test_build_reward_forms():
    assert build_reward("count").names == ["count"]
    assert build_reward(["format", "count"]).weights == {"format": 1.0, "count": 1.0}
    comp = build_reward({"format": 0.5, "count": 1.0})
    assert isinstance(comp, CompositeReward)
    assert comp.names == ["format", "count"]
    total, parts = comp("<think>hm</think><answer>3</answer>", {"answer": 3, "metadata": {}})
    assert parts == {"format": 1.0, "count": 1.0}
    assert total == 1.5
    total, parts = comp("3 circles", {"answer": 3, "metadata": {}})
    assert (total, parts) == (1.0, {"format": 0.0, "count": 1.0})
    assert build_reward(comp).weights == comp.weights


@pytest.mark.parametrize("spec", [{}, {"count": "heavy"}, {"count": float("inf")}, 3, [1, 2]])
def test_build_reward_rejects_bad_specs(spec):
    with pytest.raises((ValueError, TypeError)):
        build_reward(spec)


def test_build_reward_unknown_name():
    with pytest.raises(KeyError):
        build_reward({"count": 1.0, "nope": 1.0})
