"""A few RL steps end to end on the tiny model: full weights, LoRA, KL to a reference."""

import json

import pytest
import torch
from safetensors.torch import load_file

from mmrft.config import load_config
from mmrft.train.rl import train_rl


def _run(tmp_path, tiny_model_dir, count_data, *overrides):
    cfg = load_config(None, [
        f"model.path={tiny_model_dir}", f"data.train={count_data['train']}", f"data.eval={count_data['test']}",
        f"trainer.output_dir={tmp_path / 'run'}", "trainer.steps=2", "trainer.progress=false",
        "rollout.group_size=4", "rollout.prompts_per_step=2", "rollout.max_new_tokens=8", "trainer.lr=1e-3",
        *overrides,
    ])
    res = train_rl(cfg)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    return res, [r for r in rows if r["phase"] == "train"]


def _changed(a_dir, b_dir) -> bool:
    a, b = load_file(a_dir / "model.safetensors"), load_file(b_dir / "model.safetensors")
    assert a.keys() == b.keys()
    return any(not torch.equal(a[k], b[k]) for k in a)


USER_REWARD = "rewards.weights={task: 1.0, 'tests.train.rewards_for_tests:shorter_is_better': 1.0}"


def test_full_weights(tmp_path, tiny_model_dir, count_data):
    # A random model scores 0 on the task; the user reward (by import path) varies, so the update is non-trivial.
    res, rows = _run(tmp_path, tiny_model_dir, count_data, USER_REWARD)
    assert len(rows) == 2
    assert all(r["advantage/std"] > 0 for r in rows)
    assert "reward/tests.train.rewards_for_tests:shorter_is_better" in rows[0]
    assert rows[0]["reward/tests.train.rewards_for_tests:shorter_is_better/std"] > 0
    assert _changed(tmp_path / "run" / "final", tiny_model_dir)
    for key in ("reward/mean", "actor/loss", "actor/grad_norm", "actor/entropy", "response_length/mean",
                "time/rollout", "time/update", "actor/clip_frac", "filter/groups_kept"):
        assert key in rows[0], key
    assert set(res["eval_after"]) == {"count"}
    assert (tmp_path / "run" / "config.yaml").is_file()


def test_lora_with_kl_uses_disabled_adapter_as_reference(tmp_path, tiny_model_dir, count_data):
    res, rows = _run(tmp_path, tiny_model_dir, count_data, "model.lora.enabled=true", "model.lora.r=4",
                     "algorithm.kl_coef=0.1", USER_REWARD)
    assert all("actor/kl" in r for r in rows)
    assert rows[0]["actor/kl"] == pytest.approx(0.0, abs=1e-6)  # before any update, policy == reference
    assert rows[1]["actor/kl"] > 0  # after one update the adapter moved the policy away from the base
    # the merged checkpoint loads as a plain model (no peft needed)
    cfg = json.loads((tmp_path / "run" / "final" / "config.json").read_text())
    assert cfg["model_type"] == "qwen2_vl"
    assert not (tmp_path / "run" / "final" / "adapter_config.json").exists()
    assert _changed(tmp_path / "run" / "final", tiny_model_dir)


def test_dapo_overlong_shaping_and_filtering(tmp_path, tiny_model_dir, count_data):
    # a random model rarely stops within 6 tokens: nearly every completion is truncated and penalised in full
    _, rows = _run(tmp_path, tiny_model_dir, count_data, USER_REWARD, "rollout.max_new_tokens=6",
                   "algorithm.overlong_buffer=3", "algorithm.overlong_penalty=0.5", "algorithm.mask_truncated=true",
                   "algorithm.name=dapo")
    for r in rows:
        truncated = r["response_length/truncated"]
        assert r["filter/truncated_masked"] == pytest.approx(truncated)
        # lengths 6 == max_new_tokens give -0.5; shorter ones at most that; so the mean is <= -0.5 * truncated
        assert r["reward/overlong_penalty"] <= -0.5 * truncated + 1e-6
        assert r["reward/overlong_penalty"] < 0


def test_user_estimator_from_imports(tmp_path, tiny_model_dir, count_data):
    _, rows = _run(tmp_path, tiny_model_dir, count_data, USER_REWARD, "imports=[tests.train.plugin_for_tests]",
                   "algorithm.advantage=centred_times_two")
    assert len(rows) == 2 and all(r["advantage/std"] > 0 for r in rows)


def test_missing_plugin_module_is_a_config_error(tmp_path, tiny_model_dir, count_data):
    from mmrft.errors import ConfigError

    with pytest.raises(ConfigError, match="imports: cannot import 'no_such_module'"):
        _run(tmp_path, tiny_model_dir, count_data, "imports=[no_such_module]")


def test_dynamic_sampling_refills_dropped_groups(tmp_path, tiny_model_dir, count_data):
    _, rows = _run(tmp_path, tiny_model_dir, count_data,
                   "rewards.weights={'tests.train.rewards_for_tests:flat_for_even_ids': 1.0}",
                   "algorithm.filter_zero_variance=true", "algorithm.max_resample_rounds=4", "trainer.steps=3")
    for r in rows:
        assert r["filter/groups_kept"] == 2  # prompts_per_step, refilled
        assert r["filter/groups_drawn"] == 2 * r["filter/rounds"]
        assert r["advantage/std"] > 0
    # half the ids are even: over the run some of their groups were drawn, dropped and replaced
    assert sum(r["filter/groups_drawn"] for r in rows) > sum(r["filter/groups_kept"] for r in rows)
    # the flat share counts every drawn group: kept (spread) groups are not flat, dropped ones are
    for r in rows:
        assert r["filter/flat_groups"] == pytest.approx(1 - r["filter/groups_kept"] / r["filter/groups_drawn"])


def test_flat_rewards_are_reported_and_warned_about(tmp_path, tiny_model_dir, count_data, caplog):
    """Every completion scores 0: no group has a reward spread, the update does nothing, and after
    trainer.flat_reward_warning_steps steps in a row the run says so (once per streak)."""
    with caplog.at_level("WARNING", logger="mmrft"):
        _, rows = _run(tmp_path, tiny_model_dir, count_data,
                       "rewards.weights={'tests.train.rewards_for_tests:always_zero': 1.0}", "trainer.steps=3",
                       "trainer.flat_reward_warning_steps=2")
    assert [r["filter/flat_groups"] for r in rows] == [1.0, 1.0, 1.0]
    assert all(r["advantage/std"] == 0 for r in rows)
    warnings = [m for m in caplog.messages if "got the same reward" in m]
    assert len(warnings) == 1 and warnings[0].startswith("steps 1-2:") and "mean 0.000, accuracy 0.000" in warnings[0]


def test_flat_reward_watch_counts_streaks():
    from mmrft.train.health import FlatRewardWatch

    watch = FlatRewardWatch(patience=2)
    fired = [watch.update(s, {"filter/flat_groups": f, "reward/mean": 0.0})
             for s, f in enumerate([1.0, 0.5, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0], start=1)]
    assert fired == [False, False, False, True, False, False, False, True]  # once per streak of 2+
    assert not any(FlatRewardWatch(patience=0).update(s, {"filter/flat_groups": 1.0}) for s in range(5))


def test_flat_reward_watch_tells_solved_from_collapsed(caplog):
    from mmrft.train.health import FlatRewardWatch

    with caplog.at_level("INFO", logger="mmrft"):
        FlatRewardWatch(1).update(7, {"filter/flat_groups": 1.0, "reward/mean": 1.0, "accuracy": 1.0})
        FlatRewardWatch(1).update(9, {"filter/flat_groups": 1.0, "reward/mean": 0.0, "accuracy": 0.0})
    (solved, collapsed) = caplog.records
    assert solved.levelname == "INFO" and "steps 7-7: every completion was correct" in solved.getMessage()
    assert collapsed.levelname == "WARNING" and "has collapsed" in collapsed.getMessage()
