"""One writer per run directory (`mmrft.run_lock`): a second process is refused with the holder named; the lock of a
SIGKILLed holder is taken over with a warning (a forked child that outlives it does not keep it); released on exit
and on an exception; a record from another host decides by its heartbeat; `mmrft train`, `mmrft sft` and
`mmrft eval --out` hold it before writing anything, and a second `mmrft train` on a running run's directory fails
at once."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from mmrft.run_lock import LOCK_FILE, RunLock, RunLockError

FORK = multiprocessing.get_context("fork")  # children that need not import mmrft again (seconds each)


def _hold(run_dir, ready, release, fork_child):
    """In a child process: take the lock, optionally fork a grandchild that inherits the descriptor and outlives
    us, report (pid, grandchild pid), wait."""
    lock = RunLock(run_dir, "train").acquire()
    grandchild = 0
    if fork_child:
        grandchild = os.fork()
        if grandchild == 0:  # holds the inherited descriptor, never the lock (POSIX locks are per process)
            for fd in range(3, 1024):  # but not the pipes by which the test waits for its parent
                if fd != lock._fd:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            time.sleep(60)
            os._exit(0)
    ready.send((os.getpid(), grandchild))
    release.wait(60)
    lock.release()


def _holder(run_dir, fork_child=False):
    parent, child = FORK.Pipe()
    release = FORK.Event()
    proc = FORK.Process(target=_hold, args=(run_dir, child, release, fork_child), daemon=True)
    proc.start()
    assert parent.poll(30), "the holder did not take the lock"
    pid, grandchild = parent.recv()
    return proc, release, grandchild


def test_a_second_process_is_refused_with_the_holder_named(tmp_path):
    run = tmp_path / "run"
    proc, release, _ = _holder(run)
    try:
        with pytest.raises(RunLockError) as e:
            RunLock(run, "eval").acquire()
        msg = str(e.value)
        assert f"{run} is in use by another train" in msg
        assert f"host {socket.gethostname()}, PID {proc.pid}, started " in msg and "choose another directory" in msg
        record = json.loads((run / LOCK_FILE).read_text())
        assert record["pid"] == proc.pid and record["what"] == "train" and record["command"]
    finally:
        release.set()
        proc.join(30)
    assert not (run / LOCK_FILE).exists()  # released by its holder: the file is gone
    with RunLock(run):  # and free again
        pass


def test_the_lock_of_a_killed_holder_is_taken_over_with_a_warning(tmp_path, caplog):
    run = tmp_path / "run"
    proc, _, grandchild = _holder(run, fork_child=True)
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
        assert (run / LOCK_FILE).is_file()  # a killed holder cannot remove its record
        os.kill(grandchild, 0)  # its forked child still runs, with the lock file's descriptor open
        with caplog.at_level(logging.WARNING, logger="mmrft"):
            with RunLock(run, "train") as lock:
                assert lock.record["pid"] == os.getpid()
        assert "taking over the lock of an interrupted run" in caplog.text
        assert f"PID {proc.pid}" in caplog.text and "that process no longer runs" in caplog.text
    finally:
        os.kill(grandchild, signal.SIGKILL)  # the holder's child (init reaps it)


def test_released_on_exit_and_on_an_exception(tmp_path):
    run = tmp_path / "run"
    with RunLock(run, "sft") as lock:
        record = json.loads((run / LOCK_FILE).read_text())
        assert (record["host"], record["pid"], record["what"]) == (socket.gethostname(), os.getpid(), "sft")
        assert record["started"] and record["heartbeat"] > 0
        with pytest.raises(RunLockError, match="in use by this process already"):
            RunLock(run).acquire()  # the same process twice: a POSIX lock would not stop it, the lock does
    assert lock.record is not None and not (run / LOCK_FILE).exists()
    with pytest.raises(ValueError):
        with RunLock(run):
            raise ValueError("the run failed")
    assert not (run / LOCK_FILE).exists()
    with RunLock(run):
        pass


def test_ranks_other_than_0_do_not_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    with RunLock(tmp_path / "run"):
        assert not (tmp_path / "run").exists()
    monkeypatch.setenv("RANK", "0")
    with RunLock(tmp_path / "run"):
        assert (tmp_path / "run" / LOCK_FILE).is_file()


def test_a_record_from_another_host_decides_by_its_heartbeat(tmp_path, monkeypatch, caplog):
    run = tmp_path / "run"
    run.mkdir()
    record = {"host": "node-17", "pid": 4242, "started": "2025-01-01T00:00:00+00:00", "command": "mmrft train x.yaml",
              "heartbeat": time.time() - 10}
    (run / LOCK_FILE).write_text(json.dumps(record))
    with pytest.raises(RunLockError) as e:  # its OS lock may not reach this host: the record stands
        RunLock(run).acquire()
    assert "in use by a run on another host (host node-17, PID 4242" in str(e.value)
    assert "MMRFT_FORCE_LOCK=1" in str(e.value)
    monkeypatch.setenv("MMRFT_FORCE_LOCK", "1")
    with caplog.at_level(logging.WARNING, logger="mmrft"), RunLock(run):
        pass
    assert "taking over the lock of a run on another host (host node-17" in caplog.text
    monkeypatch.delenv("MMRFT_FORCE_LOCK")
    (run / LOCK_FILE).write_text(json.dumps({**record, "heartbeat": time.time() - 3600}))
    with RunLock(run):  # no heartbeat for an hour: stale
        pass


def test_the_heartbeat_refreshes_the_record(tmp_path):
    run = tmp_path / "run"
    with RunLock(run, heartbeat_s=0.05):
        first = json.loads((run / LOCK_FILE).read_text())["heartbeat"]
        time.sleep(0.3)
        assert json.loads((run / LOCK_FILE).read_text())["heartbeat"] > first


def test_taking_the_lock_clears_the_leftovers_of_killed_writes(tmp_path):
    run = tmp_path / "run"
    (run / ".checkpoint-000002.tmp-ab12cd").mkdir(parents=True)  # a checkpoint killed mid-write
    (run / ".checkpoint-000002.tmp-ab12cd" / "optimizers.pt").write_bytes(b"half")
    (run / ".metrics.tmp-123.jsonl").write_text("{")  # an atomic file write
    (run / ".final.old-77").mkdir()  # a swap cut short: the previous final model is put back
    (run / ".final.old-77" / "model.safetensors").write_bytes(b"weights")
    (run / "rollouts").mkdir()
    (run / "rollouts" / ".step_3.tmp-9.jsonl").write_text("")
    (run / "eval-out").mkdir()  # another writer's directory (its own lock): not touched
    (run / "eval-out" / LOCK_FILE).write_text("")
    (run / "eval-out" / ".results.tmp-5.json").write_text("")
    (run / "notes.tmp.txt").write_text("mine")  # not a name mmrft.atomic makes
    with RunLock(run):
        names = sorted(p.relative_to(run).as_posix() for p in run.rglob("*"))
    assert names == [LOCK_FILE, "eval-out", f"eval-out/{LOCK_FILE}", "eval-out/.results.tmp-5.json", "final",
                     "final/model.safetensors", "notes.tmp.txt", "rollouts"]


# ------------------------------------------------------------------------------------------------ the commands


@pytest.fixture
def one_thread():
    """The runs use one torch thread (no spinning threads on a shared machine); trainer.threads sets it for the
    whole pytest process, so it is put back afterwards."""
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _train_config(tmp_path, tiny_model_dir, count_data, steps):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"algorithm: {{name: grpo}}\nmodel: {{path: {tiny_model_dir}}}\ndata: {{train: {count_data['train']}}}\n"
        f"trainer: {{output_dir: {tmp_path / 'run'}, steps: {steps}, progress: false, threads: 1}}\n"
        "sft: {steps: 2, batch_size: 2}\n"
        "rollout: {group_size: 2, prompts_per_step: 2, max_new_tokens: 4}\ntracking: {tensorboard: false}\n")
    return cfg


def test_a_second_mmrft_train_on_a_running_run_fails_at_once(tmp_path, tiny_model_dir, count_data, capsys,
                                                             one_thread):
    from mmrft.cli import main

    cfg = _train_config(tmp_path, tiny_model_dir, count_data, 500)
    first = subprocess.Popen([sys.executable, "-m", "mmrft.cli", "train", str(cfg)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    metrics = tmp_path / "run" / "metrics.jsonl"
    try:
        deadline = time.time() + 240
        while time.time() < deadline and first.poll() is None:
            if metrics.is_file() and '"phase": "train"' in metrics.read_text():
                break
            time.sleep(0.2)
        assert first.poll() is None, first.stdout.read()
        before = metrics.read_text()
        t0 = time.time()
        assert main(["train", str(cfg)]) == 2
        err = capsys.readouterr().err
        assert time.time() - t0 < 10  # refused before loading anything
        assert f"error: {tmp_path / 'run'} is in use by another train (host {socket.gethostname()}, " \
               f"PID {first.pid}, started " in err and f"cli.py train {cfg})" in err
        assert first.poll() is None  # the first run goes on, its metrics untouched by the refused one
        assert metrics.read_text().startswith(before)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)


@pytest.mark.parametrize("command", ["train", "sft", "eval"])
def test_each_command_takes_the_lock_before_writing(tmp_path, tiny_model_dir, count_data, command, capsys,
                                                   one_thread):
    """With another process holding the directory, the command fails with the holder named and writes nothing."""
    from mmrft.cli import main

    cfg = _train_config(tmp_path, tiny_model_dir, count_data, 1)
    run = tmp_path / "run"
    args = {"train": ["train", str(cfg)], "sft": ["sft", str(cfg)],
            "eval": ["eval", "--model", str(tiny_model_dir), "--benchmark", "synthetic", "--data",
                     str(count_data["test"].parent), "--no-progress", "--max-new-tokens", "2", "--out", str(run)]}
    proc, release, _ = _holder(run)
    try:
        assert main(args[command]) == 2
        assert f"is in use by another train (host {socket.gethostname()}, PID {proc.pid}" in capsys.readouterr().err
        assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE]  # no config, no metrics, no cache
    finally:
        release.set()
        proc.join(30)
    assert main(args[command]) == 0  # free again: the command runs, and releases the lock at its end
    assert not (run / LOCK_FILE).exists() and any(run.iterdir())
