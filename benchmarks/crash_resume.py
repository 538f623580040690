"""Crash safety, measured: GRPO runs SIGKILLed at random instants, resumed, end bit-identical to an uninterrupted run.

    python benchmarks/crash_resume.py --kills 20 [--seed 0] [--out benchmarks/results/crash_resume.json]

Builds the tiny Qwen2-VL model and a small counting dataset in a temporary directory, then:

1. the reference: one uninterrupted `mmrft train` run (GRPO, 6 steps, a checkpoint after every step, a held-out
   evaluation before and after, a reward that varies with the text so that every update moves the weights);
2. `--kills` trials: the same run started fresh, SIGKILLed, resumed with `trainer.resume=auto` (the command a
   scheduler's requeue would repeat), killed again, ... 1 to 3 kills per trial (seeded), then run to its end. A kill
   is at a random instant of the process's life (a quarter uniform over the start-up: imports, model, data,
   resuming; the rest uniform over the work that remains once its metrics file is opened: the steps after the newest
   checkpoint, the evaluations, the final save), or, for the short windows a random instant rarely hits (40 %),
   forced through the fault hook (`mmrft.faults`: inside a checkpoint write, a metrics append, the final save);
3. each trial passes when its final weights equal the reference's bit for bit (every tensor of final/), every
   metrics row equals the reference's (each (phase, step) once, wall-clock fields excluded: `time/*` and `tokens/s`),
   every checkpoint left verifies, and neither a temporary file or directory (`mmrft.atomic`'s names) nor the lock
   file is left;
4. a full disk during a checkpoint: the run's directory on a small tmpfs (when this process may mount one: root),
   else a checkpoint write failing with ENOSPC through the fault hook: the run must stop with an error that names the
   full disk and the previous, intact checkpoint; then, with room again (the tmpfs enlarged), resuming must end
   bit-identical to the reference too.

Prints "K of N passed" and writes per-trial results (kills, where each landed, takeovers of the dead run's lock, the
problems found) to `--out`. Exit status 0 when every trial and the full-disk check passed. Results and the design are
described in docs/reliability.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
STEPS = 6
VOLATILE = ("time/", "tokens/s")  # wall-clock: seconds per phase, and generated tokens per rollout second
FAULT_SHARE = 0.4  # of kills forced through the hook; the rest at random instants
FAULTS = (("checkpoint_write", 0.5), ("metrics_append", 0.3), ("final_save", 0.2))
FAULT_PLACES = {"checkpoint_write": "inside a checkpoint write", "metrics_append": "inside a metrics append",
                "final_save": "inside the final save"}
REWARD_MODULE = '''"""A reward that varies with the text: no group is flat, every update moves the weights."""
import zlib


def text_hash(completion, sample):
    return zlib.crc32(completion.encode()) / 2**32
'''


def _config(work: Path) -> Path:
    text = f"""\
algorithm: {{name: grpo}}
model: {{path: {work / 'model'}}}
data: {{train: {work / 'train' / 'data.jsonl'}, eval: {work / 'test' / 'data.jsonl'}}}
trainer: {{steps: {STEPS}, checkpoint_every: 1, keep_checkpoints: 2, progress: false, lr: 1.0e-3, threads: 1}}
rollout: {{group_size: 4, prompts_per_step: 2, max_new_tokens: 8}}
rewards: {{weights: {{task: 1.0, 'crash_rewards:text_hash': 1.0}}}}
tracking: {{tensorboard: false}}
"""
    (work / "config.yaml").write_text(text)
    return work / "config.yaml"


def build(work: Path) -> Path:
    """The tiny model, the data, the reward module and the config, under `work`."""
    from mmrft.data.synthetic import tokenizer_corpus, write_dataset
    from mmrft.models.tiny import make_tiny_model

    make_tiny_model(work / "model", corpus=tokenizer_corpus(50), seed=0)
    write_dataset("count", 32, work / "train", seed=1)
    write_dataset("count", 4, work / "test", seed=2)
    (work / "crash_rewards.py").write_text(REWARD_MODULE)
    return _config(work)


# ------------------------------------------------------------------------------------------------- one process


def _metrics_inode(run_dir: Path) -> Optional[int]:
    try:
        return (run_dir / "metrics.jsonl").stat().st_ino
    except FileNotFoundError:
        return None


def launch(cfg: Path, run_dir: Path, log: Path, *, kill_after: Optional[float] = None,
           kill_into_work: Optional[float] = None, fault: Optional[str] = None, timeout: float = 900) -> dict:
    """One `mmrft train` process on `run_dir` (always with trainer.resume=auto, as a requeue repeats the same
    command), SIGKILLed if still running `kill_after` seconds after its start, or `kill_into_work` seconds after its
    start-up ended (its metrics.jsonl created or, resuming, restored: a new file); `fault`: MMRFT_FAULT_POINT."""
    path = [str(cfg.parent), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join(path)}
    env.pop("MMRFT_FAULT_POINT", None)
    if fault:
        env["MMRFT_FAULT_POINT"] = fault
    cmd = [sys.executable, "-m", "mmrft.cli", "train", str(cfg), f"trainer.output_dir={run_dir}",
           "trainer.resume=auto"]
    t0 = time.time()
    with open(log, "a") as out:
        out.write(f"\n=== {' '.join(cmd[3:])}  fault={fault} kill_after={kill_after}\n")
        out.flush()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cfg.parent,
                                start_new_session=True)
        killed, first_row, inode = False, None, _metrics_inode(run_dir)
        deadline = t0 + (kill_after if kill_after is not None else timeout)
        try:
            while True:
                try:
                    proc.wait(timeout=max(0.0, min(0.02, deadline - time.time())))
                    break
                except subprocess.TimeoutExpired:
                    pass
                if first_row is None and _metrics_inode(run_dir) not in (None, inode):
                    first_row = time.time() - t0
                    if kill_into_work is not None:
                        deadline = time.time() + kill_into_work
                if time.time() >= deadline:
                    if kill_after is None and kill_into_work is None:
                        raise TimeoutError(f"{' '.join(cmd)} ran past {timeout} s")
                    os.kill(proc.pid, signal.SIGKILL)  # the trainer alone, as the OOM killer would
                    killed = True
                    proc.wait()
                    break
        finally:
            try:  # then whatever it started (reward workers), which would exit by themselves on EOF anyway
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    text = log.read_text()
    tail = text[text.rfind("\n=== "):]
    return {"rc": proc.returncode, "killed": killed or proc.returncode == -signal.SIGKILL,
            "seconds": round(time.time() - t0, 2), "first_row_s": first_row, "output": tail}


# ------------------------------------------------------------------------------------------------- checks


def metrics_rows(run_dir: Path) -> tuple[list[dict], list[str]]:
    rows, problems = [], []
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return [], ["no metrics.jsonl"]
    for i, line in enumerate(path.read_text().splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            problems.append(f"metrics.jsonl:{i}: torn line {line[:40]!r}")
    return rows, problems


def _stable(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith(VOLATILE)}


def compare(run_dir: Path, ref_dir: Path) -> list[str]:
    """What differs from the reference run (empty: bit-identical)."""
    import torch
    from safetensors.torch import load_file

    from mmrft.atomic import BACKUP_RE, TEMP_RE
    from mmrft.run_lock import LOCK_FILE
    from mmrft.train.state import list_checkpoints, verify_checkpoint

    problems = []
    final, ref_final = run_dir / "final", ref_dir / "final"
    files = sorted(p.name for p in ref_final.glob("*.safetensors"))
    if not final.is_dir() or sorted(p.name for p in final.glob("*.safetensors")) != files:
        problems.append("final/ missing or without the reference's weight files")
    else:
        for name in files:
            a, b = load_file(str(ref_final / name)), load_file(str(final / name))
            differ = sorted(k for k in a if k not in b or a[k].dtype != b[k].dtype or not torch.equal(a[k], b[k]))
            if differ or a.keys() != b.keys():
                problems.append(f"final/{name}: {len(differ)} tensor(s) differ, e.g. {differ[:3]}")
    rows, torn = metrics_rows(run_dir)
    ref_rows, _ = metrics_rows(ref_dir)
    problems += torn
    seen = Counter((r["phase"], r["step"]) for r in rows)
    twice = sorted(k for k, n in seen.items() if n > 1)
    if twice:
        problems.append(f"metrics logged more than once: {twice}")
    ref = {(r["phase"], r["step"]): _stable(r) for r in ref_rows}
    got = {(r["phase"], r["step"]): _stable(r) for r in rows}
    if set(got) != set(ref):
        problems.append(f"metrics rows: missing {sorted(set(ref) - set(got))}, extra {sorted(set(got) - set(ref))}")
    for key in sorted(set(ref) & set(got)):
        if got[key] != ref[key]:
            diff = {k: (ref[key].get(k), got[key].get(k)) for k in set(ref[key]) | set(got[key])
                    if ref[key].get(k) != got[key].get(k)}
            problems.append(f"metrics {key} differ: {dict(list(diff.items())[:3])}")
    left = [str(p.relative_to(run_dir)) for p in run_dir.rglob("*")
            if TEMP_RE.match(p.name) or BACKUP_RE.match(p.name) or p.name == LOCK_FILE]
    if left:
        problems.append(f"left behind: {left}")
    for step, ckpt in list_checkpoints(run_dir):
        bad = verify_checkpoint(ckpt)
        if bad:
            problems.append(f"{ckpt.name}: {bad}")
    return problems


def _snapshot(run_dir: Path) -> tuple[set, bytes]:
    """The names in `run_dir` and its metrics file's content (what a launch found there)."""
    if not run_dir.is_dir():
        return set(), b""
    metrics = run_dir / "metrics.jsonl"
    return {p.name for p in run_dir.iterdir()}, metrics.read_bytes() if metrics.is_file() else b""


def where(run_dir: Path, before: tuple[set, bytes], started: bool, since: float) -> str:
    """Where a kill at a random instant landed, read from what it left that was not there `before` (a launch killed
    before it took the lock has not cleared its predecessor's leftovers yet); `started`: the process had opened its
    metrics file (its start-up was over); `since`: when it was started."""
    names = [p.name for p in run_dir.iterdir() if p.name not in before[0]] if run_dir.is_dir() else []
    if any(n.startswith(".checkpoint-") and ".tmp-deleted" in n for n in names):
        return "deleting an old checkpoint"
    if any(n.startswith(".checkpoint-") and ".tmp-" in n for n in names):
        return "inside a checkpoint write"
    if any(n.startswith(".final.") for n in names):
        return "inside the final save"
    metrics = run_dir / "metrics.jsonl"
    text = metrics.read_bytes() if metrics.is_file() else b""
    if text and text != before[1] and not text.endswith(b"\n"):
        return "inside a metrics append"
    if not started:
        return "during start-up"
    final = run_dir / "final"
    if final.is_dir() and final.stat().st_mtime >= since:
        return "after the final save"
    return "between writes"


def _latest_step(run_dir: Path) -> int:
    from mmrft.train.state import latest_checkpoint

    ckpt = latest_checkpoint(run_dir) if run_dir.is_dir() else None
    return json.loads((ckpt / "state.json").read_text())["step"] if ckpt else 0


def _pick_fault(rng: random.Random, run_dir: Path) -> str:
    remaining = STEPS - _latest_step(run_dir)
    names, weights = zip(*FAULTS)
    name = rng.choices(names, weights)[0]
    if name == "checkpoint_write" and remaining == 0:
        name = "final_save"
    if name == "checkpoint_write":
        return f"checkpoint_write:{rng.randint(1, remaining)}"
    if name == "metrics_append":  # the remaining steps' rows, plus the final evaluation's
        return f"metrics_append:{rng.randint(1, remaining + 1)}"
    return "final_save:1"


# ------------------------------------------------------------------------------------------------- trials


def trial(i: int, seed: int, cfg: Path, work: Path, ref_dir: Path, startup: float, work_seconds: float) -> dict:
    rng = random.Random(f"crash-resume-{seed}-{i}")
    run_dir, log = work / f"trial-{i:03d}", work / f"trial-{i:03d}.log"
    planned = rng.randint(1, 3)
    kills: list[dict] = []
    launches, takeovers, t0 = 0, 0, time.time()
    while True:
        launches += 1
        if launches > 3 * planned + 6:
            return {"trial": i, "passed": False, "problems": ["too many launches"], "kills": kills}
        fault = delay = into_work = None
        if len(kills) < planned:
            if rng.random() < FAULT_SHARE:
                fault = _pick_fault(rng, run_dir)
            elif rng.random() < 0.25:  # a random instant of the start-up (imports, model, data, resuming)
                delay = rng.uniform(0.0, startup)
            else:  # or of the work that remains: the steps after the newest checkpoint, the evaluations, the save
                remaining = STEPS - _latest_step(run_dir)
                into_work = rng.uniform(0.0, work_seconds * (remaining + 1) / (STEPS + 1))
        since, before = time.time(), _snapshot(run_dir)
        r = launch(cfg, run_dir, log, kill_after=delay, kill_into_work=into_work, fault=fault)
        takeovers += "taking over the lock of an interrupted run" in r["output"]
        if r["killed"]:
            how = (f"fault {fault}" if fault else f"{delay:.2f} s after start" if delay is not None
                   else f"{into_work:.2f} s into the work")
            place = (FAULT_PLACES[fault.split(":")[0]] if fault
                     else where(run_dir, before, r["first_row_s"] is not None, since))
            kills.append({"launch": launches, "how": how, "forced": fault is not None, "where": place})
            continue
        if r["rc"] != 0:
            return {"trial": i, "passed": False, "kills": kills,
                    "problems": [f"launch {launches} exited {r['rc']}: {r['output'][-600:]}"]}
        if not kills:  # the run ended before its first kill: start the trial again
            shutil.rmtree(run_dir)
            continue
        break
    problems = compare(run_dir, ref_dir)
    return {"trial": i, "passed": not problems, "kills": kills, "launches": launches, "lock_takeovers": takeovers,
            "seconds": round(time.time() - t0, 1), "problems": problems}


def full_disk(cfg: Path, work: Path, ref_dir: Path) -> dict:
    """A checkpoint write that runs out of disk: a real tmpfs too small for the third checkpoint when mounting is
    allowed, else ENOSPC injected at the third checkpoint write."""
    from mmrft.train.state import latest_checkpoint

    mnt = work / "small-disk"
    mnt.mkdir()
    ckpt = latest_checkpoint(ref_dir)
    size = int(2.5 * sum(f.stat().st_size for f in ckpt.rglob("*") if f.is_file())) + (2 << 20)
    real = False
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount"):
        real = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size // 1024}k", "tmpfs", str(mnt)],
                              capture_output=True).returncode == 0
    run_dir, log = mnt / "run", work / "full-disk.log"
    out = {"how": f"tmpfs of {size / 2**20:.0f} MiB (2 checkpoints fit, not 3)" if real else
           "ENOSPC injected at the 3rd checkpoint write (MMRFT_FAULT_POINT=checkpoint_write:3:enospc; no mount "
           "allowed here)", "problems": []}
    try:
        r = launch(cfg, run_dir, log, fault=None if real else "checkpoint_write:3:enospc")
        message = next((line for line in r["output"].splitlines() if line.startswith("error:")), "")
        out["error"] = message
        if r["rc"] != 2 or "No space left on device" not in message or "is intact" not in message:
            out["problems"].append(f"expected a clear full-disk error (exit 2), got exit {r['rc']}: "
                                   f"{r['output'][-800:]}")
        out["kept_step"] = _latest_step(run_dir)
        if out["kept_step"] != 2:
            out["problems"].append(f"the newest valid checkpoint is step {out['kept_step']}, expected 2")
        from mmrft.atomic import TEMP_RE

        left = [p.name for p in run_dir.rglob("*") if TEMP_RE.match(p.name)]
        if left:
            out["problems"].append(f"the failed write left {left}")
        if real:
            subprocess.run(["mount", "-o", f"remount,size={4 * size // 1024}k", str(mnt)], check=True)
        r = launch(cfg, run_dir, log)
        if r["rc"] != 0:
            out["problems"].append(f"the resumed run exited {r['rc']}: {r['output'][-800:]}")
        else:
            out["problems"] += compare(run_dir, ref_dir)
    finally:
        if real and subprocess.run(["umount", str(mnt)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
    out["real_full_disk"] = real
    out["passed"] = not out["problems"]
    return out


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=20, help="trials: each kills the run 1-3 times, then lets it end")
    p.add_argument("--seed", type=int, default=0, help="seeds where and when the kills land")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "crash_resume.json"))
    p.add_argument("--workdir", help="keep the runs here (default: a temporary directory, removed)")
    p.add_argument("--no-full-disk", action="store_true", help="skip the full-disk check")
    args = p.parse_args(argv)
    t_start = time.time()
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="mmrft-crash-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        cfg = build(work)
        ref = launch(cfg, work / "reference", work / "reference.log")
        if ref["rc"] != 0:
            print(ref["output"][-3000:], file=sys.stderr)
            return 1
        startup = ref["first_row_s"] or 0.0  # until its metrics file opens: imports, model, data
        print(f"reference: {ref['seconds']:.1f} s (start-up {ref['first_row_s'] or 0:.1f} s)", flush=True)
        trials = []
        for i in range(args.kills):
            t = trial(i, args.seed, cfg, work, work / "reference", startup, ref["seconds"] - startup)
            trials.append(t)
            kills = "; ".join(f"{k['how']} -> {k['where']}" for k in t["kills"])
            print(f"trial {i + 1}/{args.kills}: {'pass' if t['passed'] else 'FAIL'} ({kills})"
                  + ("" if t["passed"] else f": {t['problems']}"), flush=True)
        disk = None if args.no_full_disk else full_disk(cfg, work, work / "reference")
        if disk is not None:
            print(f"full disk ({disk['how']}): {'pass' if disk['passed'] else 'FAIL'} {disk['problems'] or ''}")
        passed = sum(t["passed"] for t in trials)
        landed = [k for t in trials for k in t["kills"]]
        result = {
            "trials": len(trials), "passed": passed, "seed": args.seed, "steps": STEPS,
            "kills_landed": len(landed), "kills_by_place": dict(Counter(k["where"] for k in landed)),
            "forced_kills": sum(k["forced"] for k in landed),
            "forced_kills_by_place": dict(Counter(k["where"] for k in landed if k["forced"])),
            "lock_takeovers": sum(t.get("lock_takeovers", 0) for t in trials),
            "reference_seconds": ref["seconds"], "reference_startup_seconds": startup,
            "seconds": round(time.time() - t_start, 1),
            "volatile_fields_excluded": ["time/*", "tokens/s"],
            "full_disk": disk, "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                           "python": platform.python_version()},
            "per_trial": trials,
        }
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
        forced = Counter(k["where"] for k in landed if k["forced"])
        print(f"{passed} of {len(trials)} passed ({len(landed)} kills: "
              + ", ".join(f"{n} {w}" + (f" ({forced[w]} forced)" if forced[w] else "")
                          for w, n in Counter(k['where'] for k in landed).most_common())
              + f"); full disk: {'-' if disk is None else 'pass' if disk['passed'] else 'FAIL'}; "
              f"{result['seconds']:.0f} s; {out}")
        return 0 if passed == len(trials) and (disk is None or disk["passed"]) else 1
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
