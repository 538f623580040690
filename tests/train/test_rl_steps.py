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
    assert _changed(tmp_path / "run" / "final", tiny_model_dir)
    for key in ("reward/mean", "actor/loss", "actor/grad_norm", "actor/entropy", "response_length/mean",
                "time/rollout", "time/update", "actor/clip_frac"):
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
