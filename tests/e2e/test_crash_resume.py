"""Runs killed at arbitrary instants resume to the uninterrupted run, bit for bit (docs/reliability.md).

Default suite: one `mmrft train` process SIGKILLed inside a checkpoint write (through the fault hook,
`mmrft.faults`), resumed: final weights and every metric equal the uninterrupted run's, each step logged once, the
dead run's lock taken over, its half-written checkpoint cleared. A full disk during a checkpoint (a real tmpfs where
this process may mount one) keeps the previous checkpoint. Slow job: `benchmarks/crash_resume.py` with a few trials
of random kills.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mmrft.atomic import TEMP_RE
from mmrft.config import load_config
from mmrft.run_lock import LOCK_FILE
from mmrft.train.rl import train_rl
from mmrft.train.state import CheckpointError, latest_checkpoint, list_checkpoints, save_checkpoint, verify_checkpoint

ROOT = Path(__file__).resolve().parents[2]
VOLATILE = ("time/", "tokens/s")  # wall-clock fields: seconds per phase, generated tokens per rollout second


def _overrides(tmp_path, tiny_model_dir, count_data, run):
    # one thread in both processes: the same reductions, and no spinning threads on a shared machine
    return [
        "algorithm.name=grpo", f"model.path={tiny_model_dir}", f"data.train={count_data['train']}",
        f"data.eval={count_data['test']}", f"trainer.output_dir={run}", "trainer.steps=3",
        "trainer.checkpoint_every=1", "trainer.keep_checkpoints=2",
        "trainer.progress=false", "trainer.lr=1e-3", "trainer.threads=1",
        "rollout.group_size=4", "rollout.prompts_per_step=2", "rollout.max_new_tokens=6",
        "rewards.weights={task: 1.0, 'tests.train.rewards_for_tests:shorter_is_better': 1.0}",
        "tracking.tensorboard=false",
    ]


def _rows(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def _stable(rows: list[dict]) -> dict:
    return {(r["phase"], r["step"]): {k: v for k, v in r.items() if not k.startswith(VOLATILE)} for r in rows}


@pytest.fixture
def one_thread():
    """trainer.threads=1 sets torch's threads for the whole pytest process: put them back afterwards."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_a_run_killed_inside_a_checkpoint_write_resumes_bit_identical(tmp_path, tiny_model_dir, count_data, caplog,
                                                                      one_thread):
    ref = tmp_path / "ref"
    train_rl(load_config(None, _overrides(tmp_path, tiny_model_dir, count_data, ref)))
    run = tmp_path / "run"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("algorithm: {name: grpo}\n")  # as the overrides say
    env = {**os.environ, "MMRFT_FAULT_POINT": "checkpoint_write:2", "PYTHONPATH": str(ROOT)}
    killed = subprocess.run([sys.executable, "-m", "mmrft.cli", "train", str(cfg),
                             *_overrides(tmp_path, tiny_model_dir, count_data, run)],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert "MMRFT_FAULT_POINT: SIGKILL at checkpoint_write #2" in killed.stderr
    half = [p.name for p in run.iterdir() if TEMP_RE.match(p.name)]
    assert len(half) == 1 and half[0].startswith(".checkpoint-000002.tmp-")  # died inside the second checkpoint
    assert latest_checkpoint(run).name == "checkpoint-000001"
    assert json.loads((run / LOCK_FILE).read_text())["pid"] != os.getpid()  # the dead run's lock is still there
    assert sorted(s for p, s in _stable(_rows(run))) == [0, 1, 2]  # it had logged step 2 already

    with caplog.at_level(logging.INFO, logger="mmrft"):
        res = train_rl(load_config(None, [*_overrides(tmp_path, tiny_model_dir, count_data, run),
                                          "trainer.resume=auto"]))
    assert "taking over the lock of an interrupted run" in caplog.text
    assert "cleared 1 leftover(s) of interrupted writes: .checkpoint-000002.tmp-" in caplog.text
    rows = _rows(run)
    assert len({(r["phase"], r["step"]) for r in rows}) == len(rows)  # each step once (step 2 was logged again)
    assert _stable(rows) == _stable(_rows(ref))  # every metric, the evaluations included
    a, b = load_file(str(ref / "final" / "model.safetensors")), load_file(str(Path(res["checkpoint"]) /
                                                                                "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    start = load_file(str(tiny_model_dir / "model.safetensors"))
    assert any(not torch.equal(a[k], start[k]) for k in a if k in start)  # the updates did move the weights
    assert not [p for p in run.rglob("*") if TEMP_RE.match(p.name) or p.name == LOCK_FILE]
    assert all(verify_checkpoint(p) is None for _, p in list_checkpoints(run))


def _mount_tmpfs(path: Path, size: str) -> bool:
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount")):
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, tiny_model_dir):
    """A real tmpfs with room for one checkpoint and a half; without the right to mount one, skipped (the same
    path with ENOSPC injected is tested in tests/train/test_resume.py and by benchmarks/crash_resume.py)."""
    from mmrft.config import ModelConfig
    from mmrft.models.load import load_policy
    from mmrft.train.optim import make_optimizer

    disk = tmp_path / "disk"
    disk.mkdir()
    model, _ = load_policy(ModelConfig(path=str(tiny_model_dir)))
    opt, sched = make_optimizer(model, 1e-3, 0.0, 0)
    for w in model.parameters():
        w.grad = torch.ones_like(w)
    opt.step()  # the optimizer state (two moments per weight) is what makes a checkpoint three times the weights
    parts = {"policy": model, "optimizers": {"optimizer": opt, "scheduler": sched}, "generator": torch.Generator()}
    probe = save_checkpoint(tmp_path / "probe", 1, parts, {"sampler": {}})
    size = sum(f.stat().st_size for f in probe.rglob("*") if f.is_file())
    if not _mount_tmpfs(disk, f"{int(size * 1.5) // 1024}k"):
        pytest.skip("mounting a tmpfs is not allowed here (needs root)")
    try:
        first = save_checkpoint(disk, 1, parts, {"sampler": {}})
        with pytest.raises(CheckpointError) as e:
            save_checkpoint(disk, 2, parts, {"sampler": {}})
        msg = str(e.value)
        assert "cannot write checkpoint" in msg and "No space left on device" in msg
        assert msg.endswith(f"the previous checkpoint {first} is intact")
        assert [p.name for p in disk.iterdir()] == ["checkpoint-000001"]  # no half-written directory left
        assert latest_checkpoint(disk) == first and verify_checkpoint(first) is None
    finally:  # lazily if busy: torch's writer may keep the failed file open until it is garbage-collected
        if subprocess.run(["umount", str(disk)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.mark.slow
def test_the_crash_resume_benchmark_passes_a_few_trials(tmp_path):
    spec = importlib.util.spec_from_file_location("crash_resume", ROOT / "benchmarks" / "crash_resume.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "crash.json"
    assert mod.main(["--kills", "3", "--seed", "7", "--workdir", str(tmp_path / "work"), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["passed"] == result["trials"] == 3 and result["kills_landed"] >= 3
    assert result["full_disk"]["passed"]
