"""Runs driven into the training-health alarms on the tiny model (seconds each): a policy paid for stopping early
collapses its length and entropy; a random policy that never stops fills every completion (length explosion); a
large learning rate with several passes over each batch blows up the clipped share and the KL to the rollout policy;
an alarm in `health.stop` ends the run cleanly at that step with a checkpoint. Format gaming and the held-out drop
are checked on metric sequences (tests/train/test_health.py): no few-second run reaches them honestly."""

from __future__ import annotations

import json

import pytest

from mmrft.config import load_config
from mmrft.data.synthetic import tokenizer_corpus, write_dataset
from mmrft.models.tiny import make_tiny_model
from mmrft.train.rl import train_rl


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("health")
    return (make_tiny_model(root / "model", corpus=tokenizer_corpus(), seed=0),
            write_dataset("count", 16, root / "data", seed=2))


def short(completion: str, sample: dict) -> float:
    """Pays for stopping early: 1 for an empty completion, down to 0 at 16 characters."""
    return max(0.0, 1.0 - len(completion) / 16)


def run(setup, out, *overrides):
    model, data = setup
    cfg = load_config(None, [f"model.path={model}", f"data.train={data}", f"trainer.output_dir={out}",
                             "trainer.progress=false", "rollout.prompts_per_step=2", "rollout.group_size=8",
                             "rewards.workers=0", *overrides])
    result = train_rl(cfg)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return result, [r for r in rows if r.get("phase") == "train"]


def alarms(result) -> list[str]:
    return [a["alarm"] for a in result["health"]["fired"]]


def test_paid_to_stop_early_collapses_length_and_entropy(setup, tmp_path):
    result, rows = run(setup, tmp_path / "run", "trainer.steps=12", "trainer.lr=0.02", "rollout.max_new_tokens=16",
                       f"rewards.weights={{'{__name__}:short': 1.0}}", "health.baseline_steps=2",
                       "health.patience=2", "health.length_min_ratio=0.5", "health.entropy_min=0.5")
    assert "length_collapse" in alarms(result) and "entropy_collapse" in alarms(result)
    assert rows[-1]["response_length/mean"] < 0.5 * rows[0]["response_length/mean"]
    assert rows[-1]["health/length_collapse"] == 1.0


def test_a_policy_that_never_stops_is_a_length_explosion(setup, tmp_path):
    result, rows = run(setup, tmp_path / "run", "trainer.steps=3", "rollout.max_new_tokens=8",
                       "health.patience=2", "health.truncated_max=0.5")
    assert rows[0]["response_length/truncated"] > 0.5  # random weights rarely write the end-of-turn token
    assert alarms(result) == ["length_explosion"]
    assert [r["health/length_explosion"] for r in rows] == [1.0, 1.0, 1.0]


def test_large_updates_blow_up_clip_and_kl_and_stop_the_run(setup, tmp_path):
    result, rows = run(setup, tmp_path / "run", "trainer.steps=6", "trainer.lr=0.05", "algorithm.ppo_epochs=4",
                       "rollout.max_new_tokens=8", f"rewards.weights={{'{__name__}:short': 1.0}}",
                       "health.patience=1", "health.clip_frac_max=0.3",
                       "health.kl_max=0.2", "health.truncated_max=0", "health.stop=[clip_blowup]")
    assert "clip_blowup" in alarms(result)
    stop_step = next(a["step"] for a in result["health"]["fired"] if a["alarm"] == "clip_blowup")
    assert result["stopped_at"] == stop_step < 6 and len(rows) == stop_step
    assert rows[-1]["actor/clip_frac"] > 0.3
    assert result["health"]["stop_reason"] == "health alarm clip_blowup (health.stop)"
    assert (tmp_path / "run" / f"checkpoint-{stop_step:06d}").is_dir()  # resumable from where it stopped
