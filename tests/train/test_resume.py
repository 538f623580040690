"""Checkpoints and resume: a resumed run repeats the uninterrupted run exactly; broken checkpoints are skipped;
SIGTERM stops a run with a loadable checkpoint; a full disk keeps the previous checkpoint."""

import errno
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mmrft.config import load_config
from mmrft.errors import MmrftError
from mmrft.train.rl import train_rl
from mmrft.train.state import CheckpointError, latest_checkpoint, list_checkpoints, save_checkpoint, verify_checkpoint

VOLATILE = ("time/", "tokens/s")


def _cfg(tmp_path, tiny_model_dir, count_data, preset, *extra):
    return load_config(None, [
        f"algorithm.name={preset}", f"model.path={tiny_model_dir}", f"data.train={count_data['train']}",
        f"trainer.output_dir={tmp_path / 'run'}", "trainer.steps=4", "trainer.checkpoint_every=2",
        "trainer.keep_checkpoints=5", "trainer.progress=false", "rollout.group_size=4", "rollout.prompts_per_step=2",
        "rollout.max_new_tokens=6", "trainer.lr=1e-3", "tracking.tensorboard=false", *extra,
    ])


def _train_rows(run: Path) -> dict[int, dict]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: {k: v for k, v in r.items() if not k.startswith(VOLATILE)} for r in rows if r["phase"] == "train"}


TOOLS = ("imports=[tests.rollout.scripted_env]", "rollout.environment=test_always_zooms",
         "rollout.environment_options={turns: 2, vary: true}", "rollout.max_total_tokens=120",
         "rewards.weights={'tests.train.rewards_for_tests:shorter_is_better': 1.0, tool_failures: 1.0}")


@pytest.mark.parametrize("preset,extra", [
    ("grpo", ()),  # KL to a frozen reference copy
    ("ppo", ()),  # critic, its optimizer, minibatch shuffles
    ("dapo", ("model.lora.enabled=true", "model.lora.r=4", "model.lora.target_modules=[q_proj,v_proj]")),
    # multi-turn trajectories with returned images, GAE across masked tool turns (30 s: the slow job; resuming with
    # tools is checked in the default suite by the torchrun resume tests with tools, DDP and FSDP2)
    pytest.param("ppo", TOOLS, marks=pytest.mark.slow),
], ids=["grpo", "ppo", "dapo-lora", "ppo-tools"])
def test_resumed_run_repeats_the_uninterrupted_run(tmp_path, request, tiny_model_dir, count_data, preset, extra,
                                                   caplog):
    if extra is TOOLS:  # trajectories need turns that end: the short-turn copy of the tiny model
        tiny_model_dir = request.getfixturevalue("short_turn_model_dir")
    run = tmp_path / "run"
    train_rl(_cfg(tmp_path, tiny_model_dir, count_data, preset, *extra))
    full = _train_rows(run)
    assert sorted(full) == [1, 2, 3, 4]
    if extra is TOOLS:
        assert all(r["trajectory/images"] > 0 and r["trajectory/turns"] > 1 for r in full.values()), full
    weights = load_file(str(run / "final" / "model.safetensors"))
    assert [s for s, _ in list_checkpoints(run)] == [2, 4]

    # the newest checkpoint is corrupt: `auto` falls back to step 2, with a warning
    victim = next((run / "checkpoint-000004" / "policy").glob("*.safetensors"))
    victim.write_bytes(victim.read_bytes()[:-10])
    shutil.rmtree(run / "final")
    if preset == "ppo":  # the run's own log lost: the checkpoint's copy of the metrics restores steps 1-2
        (run / "metrics.jsonl").unlink()
    with caplog.at_level(logging.WARNING, logger="mmrft"):
        res = train_rl(_cfg(tmp_path, tiny_model_dir, count_data, preset, *extra, "trainer.resume=auto"))
    assert "checkpoint-000004 is unusable" in caplog.text and "does not match its manifest" in caplog.text
    resumed = _train_rows(run)
    assert sorted(resumed) == [1, 2, 3, 4]  # steps 3-4 logged once: the interrupted run's rows were dropped
    for step in (3, 4):
        assert resumed[step] == full[step], (step, {k: (full[step].get(k), v) for k, v in resumed[step].items()
                                                    if full[step].get(k) != v})
    again = load_file(str(Path(res["checkpoint"]) / "model.safetensors"))
    assert weights.keys() == again.keys() and all(torch.equal(weights[k], again[k]) for k in weights)


def test_resume_needs_a_checkpoint(tmp_path, tiny_model_dir, count_data):
    from mmrft.errors import ConfigError

    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="has no usable checkpoint"):
        train_rl(_cfg(tmp_path, tiny_model_dir, count_data, "grpo", f"trainer.resume={tmp_path / 'empty'}"))


def test_full_disk_keeps_the_previous_checkpoint(tmp_path, tiny_model_dir, monkeypatch):
    from mmrft.config import ModelConfig
    from mmrft.models.load import load_policy
    from mmrft.train import state as state_mod
    from mmrft.train.optim import make_optimizer

    model, _ = load_policy(ModelConfig(path=str(tiny_model_dir)))
    opt, sched = make_optimizer(model, 1e-3, 0.0, 0)
    parts = {"policy": model, "optimizers": {"optimizer": opt, "scheduler": sched}, "generator": torch.Generator()}
    first = save_checkpoint(tmp_path, 1, parts, {"sampler": {}})
    assert verify_checkpoint(first) is None

    def full_disk(model, out):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(state_mod, "save_weights", full_disk)
    with pytest.raises(CheckpointError, match=r"No space left on device; the previous checkpoint .*checkpoint-000001 is intact"):
        save_checkpoint(tmp_path, 2, parts, {"sampler": {}})
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint-000001"]  # no half-written directory left
    assert latest_checkpoint(tmp_path) == first


def test_repeated_non_finite_updates_stop_the_run(tmp_path, tiny_model_dir, count_data, monkeypatch):
    import mmrft.train.learn as learn

    def nan_update(*a, **k):
        return {"loss": float("nan"), "grad_norm": float("nan"), "skipped_updates": 1.0}

    monkeypatch.setattr(learn, "policy_update", nan_update)
    cfg = _cfg(tmp_path, tiny_model_dir, count_data, "dr_grpo", "trainer.max_nonfinite_steps=2", "trainer.steps=6")
    with pytest.raises(MmrftError, match="2 updates in a row skipped for non-finite gradients"):
        train_rl(cfg)
    assert sorted(_train_rows(tmp_path / "run")) == [1, 2]


def test_sigterm_finishes_the_step_and_leaves_a_loadable_checkpoint(tmp_path, tiny_model_dir, count_data):
    from transformers import AutoModelForImageTextToText

    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(
        f"algorithm: {{name: dr_grpo}}\nmodel: {{path: {tiny_model_dir}}}\ndata: {{train: {count_data['train']}}}\n"
        f"trainer: {{output_dir: {tmp_path / 'run'}, steps: 500, progress: false}}\n"
        "rollout: {group_size: 2, prompts_per_step: 2, max_new_tokens: 6}\ntracking: {tensorboard: false}\n")
    proc = subprocess.Popen([sys.executable, "-m", "mmrft.cli", "train", str(cfg_file)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if metrics.is_file() and '"phase": "train"' in metrics.read_text():
            break
        time.sleep(0.5)
    assert proc.poll() is None, proc.stdout.read()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    assert "SIGTERM received" in out and "stopped at step" in out and "--resume" in out
    ckpt = latest_checkpoint(tmp_path / "run")
    assert ckpt is not None and verify_checkpoint(ckpt) is None
    step = json.loads((ckpt / "state.json").read_text())["step"]
    assert max(_train_rows(tmp_path / "run")) == step < 500
    AutoModelForImageTextToText.from_pretrained(str(ckpt / "policy"))  # a complete model, loadable on its own


def test_progress_is_plain_log_lines_when_not_a_terminal(caplog):
    from mmrft.train.progress import Progress

    p = Progress(total=4, start=1, desc="grpo", enabled=True, every=2)
    assert not p.tty  # pytest captures stderr
    with caplog.at_level(logging.INFO, logger="mmrft"):
        for step in range(1, 5):
            p.update(step, {"reward": f"{0.25 * step:.3f}", "acc": "0.500", "tok/s": "1234"})
    p.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and lines[0].startswith("grpo step 2/4  reward 0.500  acc 0.500  tok/s 1234  ETA ")
    assert lines[1].startswith("grpo step 4/4  reward 1.000")
