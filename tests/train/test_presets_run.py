"""Each algorithm preset runs 3 RL steps end to end on the tiny model (issue: the RL algorithm family)."""

import json

import pytest

from mmrft.config import load_config
from mmrft.presets import preset_names
from mmrft.train.rl import train_rl

# The second wave of presets (CISPO, GMPO, GPG, Clip-/KL-Cov, LUSPO, BNPO) runs in the slow job: their losses are
# checked by hand in tests/algorithms, and together they would add minutes to the default suite; SAPO stays here.
SECOND_WAVE = {"cispo", "gmpo", "gpg", "clip_cov", "kl_cov", "luspo", "bnpo"}
RUNNABLE = [pytest.param(p, marks=pytest.mark.slow) if p in SECOND_WAVE else p for p in preset_names()]
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
    if cfg.algorithm.kl_coef > 0 and cfg.algorithm.kl_in_reward:
        assert all("kl/in_reward" in r and "actor/kl" not in r for r in train)
    elif cfg.algorithm.kl_coef > 0:
        assert all("actor/kl" in r for r in train)
    if cfg.algorithm.advantage == "gae":  # PPO: the critic is trained and saved beside the policy
        assert all(r["critic/vf_loss"] > 0 and r["critic/grad_norm"] > 0 for r in train)
        assert (tmp_path / preset / "critic" / "value_head.safetensors").is_file()
    if cfg.algorithm.ppo_epochs * cfg.algorithm.minibatches > 1:
        # off-policy minibatches: the ratio moves away from 1 after the first optimizer step
        assert any(r["actor/ratio_max"] > 1.0 or r["actor/ratio_min"] < 1.0 for r in train)
    assert (tmp_path / preset / "final" / "model.safetensors").is_file()



def test_kl_folded_into_outcome_rewards(tmp_path, tiny_model_dir, count_data):
    """algorithm.kl_in_reward with an outcome estimator: the summed k1 leaves each reward, no KL loss term."""
    cfg = _cfg(tmp_path, tiny_model_dir, count_data, "rloo")
    cfg.algorithm.kl_coef, cfg.algorithm.kl_in_reward = 0.05, True
    train_rl(cfg)
    rows = [json.loads(x) for x in (tmp_path / "rloo" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["phase"] == "train"]
    assert all("kl/in_reward" in r and "actor/kl" not in r for r in train)
    assert abs(train[0]["kl/in_reward"]) < 1e-6  # the policy is still the reference at step 1
    assert abs(train[-1]["kl/in_reward"]) > 1e-4  # and has moved by step 3
