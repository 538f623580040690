"""Slow: GRPO raises the reward of an SFT'd tiny model on the counting task (fixed seed, CPU)."""

import json

import pytest

from mmrft.config import load_config
from mmrft.data.synthetic import tokenizer_corpus, write_dataset
from mmrft.models.tiny import make_tiny_model
from mmrft.train.rl import train_rl
from mmrft.train.sft import train_sft


@pytest.mark.slow
def test_grpo_raises_reward_on_counting(tmp_path):
    model = make_tiny_model(tmp_path / "model", corpus=tokenizer_corpus(), seed=0)
    labelled = write_dataset("count", 256, tmp_path / "labelled", seed=1)
    fresh = write_dataset("count", 2048, tmp_path / "rl", seed=2)
    test = write_dataset("count", 100, tmp_path / "test", seed=3)
    sft = train_sft(load_config(None, [
        f"model.path={model}", f"data.train={labelled}", f"trainer.output_dir={tmp_path / 'sft'}",
        "sft.steps=450", "sft.lr=1e-3", "trainer.progress=false",
    ]))
    res = train_rl(load_config(None, [
        f"model.path={sft['checkpoint']}", f"data.train={fresh}", f"data.eval={test}",
        f"trainer.output_dir={tmp_path / 'rl'}", "trainer.steps=150", "trainer.lr=1e-4", "trainer.progress=false",
        "rollout.max_new_tokens=32", "rewards.weights={task: 1.0}", "algorithm.name=grpo", "algorithm.kl_coef=0",
        "algorithm.loss_agg_mode=token-mean",
    ]))
    rows = [json.loads(x) for x in (tmp_path / "rl" / "metrics.jsonl").read_text().splitlines()]
    reward = [r["reward/mean"] for r in rows if r["phase"] == "train"]
    early, late = sum(reward[:30]) / 30, sum(reward[-30:]) / 30
    before, after = res["eval_before"]["count"]["accuracy"], res["eval_after"]["count"]["accuracy"]
    assert late > early + 0.03, (early, late)
    assert after >= before + 0.05, (before, after)
