"""Each algorithm preset runs 3 RL steps end to end on the tiny model (issue: the RL algorithm family)."""

import json

import pytest

from mmrft.config import load_config
from mmrft.errors import ConfigError
from mmrft.presets import preset_names
from mmrft.train.rl import train_rl

RUNNABLE = [p for p in preset_names() if p != "ppo"]
USER_REWARD = "rewards.weights={task: 1.0, 'tests.train.rewards_for_tests:shorter_is_better': 1.0}"


def _cfg(tmp_path, tiny_model_dir, count_data, preset):
    return load_config(None, [
        f"algorithm.name={preset}", f"model.path={tiny_model_dir}", f"data.train={count_data['train']}",
        f"trainer.output_dir={tmp_path / preset}", "trainer.steps=3", "trainer.progress=false",
        "rollout.group_size=4", "rollout.prompts_per_step=2", "rollout.max_new_tokens=6", "trainer.lr=1e-3",
        USER_REWARD,
    ])


@pytest.mark.parametrize("preset", RUNNABLE)
def test_preset_runs_three_steps(tmp_path, tiny_model_dir, count_data, preset):
    cfg = _cfg(tmp_path, tiny_model_dir, count_data, preset)
    train_rl(cfg)
    rows = [json.loads(x) for x in (tmp_path / preset / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["phase"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3]
    for r in train:
        assert r["advantage/std"] > 0
        assert "actor/loss" in r and r["actor/grad_norm"] == r["actor/grad_norm"]  # finite, not NaN
    if cfg.algorithm.kl_coef > 0:
        assert all("actor/kl" in r for r in train)
    if cfg.algorithm.ppo_epochs * cfg.algorithm.minibatches > 1:
        # off-policy minibatches: the ratio moves away from 1 after the first optimizer step
        assert any(r["actor/ratio_max"] > 1.0 or r["actor/ratio_min"] < 1.0 for r in train)
    assert (tmp_path / preset / "final" / "model.safetensors").is_file()


def test_ppo_preset_is_rejected_until_a_critic_exists(tmp_path, tiny_model_dir, count_data):
    with pytest.raises(ConfigError, match="gae needs a value model"):
        train_rl(_cfg(tmp_path, tiny_model_dir, count_data, "ppo"))
