"""One-step off-policy rollouts (`rollout.overlap=true`) against the plain loop: seconds per step, same work.

    python benchmarks/overlap.py [--steps N] [--warmup W] [--rounds R] [--threads T] [--out PATH]

Builds (or reuses, under benchmarks/results/overlap/) the demo's tiny Qwen2-VL and 256 `count` scenes, then runs the
two arms alternately, each in a fresh process per round (the order alternates between rounds): W + N GRPO steps of
8 prompts x G = 8 completions of at most 32 new tokens (the demo's `demo_grpo.yaml`), `rollout.correction=tis` in
both arms (so both return the sampler's log-probs), no checkpoints, no evaluation. Figures: the median over the
measured steps of all rounds of mmrft's `time/step` (from drawing the step's prompts - with overlap, taking the batch
sampled ahead - to its log line: the step-to-step interval), the rollout's own time and, with overlap, how long
the step waited for the batch sampled ahead (`time/rollout_wait`). Written atomically to `--out` (default
benchmarks/results/overlap/overlap.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
WORK = ROOT / "benchmarks" / "results" / "overlap"
ARMS = {"plain": ["rollout.overlap=false"], "overlap": ["rollout.overlap=true"]}


def child(model: str, data: str, out_dir: str, steps: int, threads: int, arm: str) -> None:
    from mmrft.config import load_config
    from mmrft.demo import config_path
    from mmrft.train.rl import train_rl

    train_rl(load_config(config_path("demo_grpo.yaml"), [
        f"model.path={model}", f"data.train={data}", f"trainer.output_dir={out_dir}", "trainer.overwrite=true",
        f"trainer.steps={steps}", "trainer.eval_every=0", "trainer.checkpoint_every=0", "trainer.progress=false",
        f"trainer.threads={threads}", "tracking.tensorboard=false", "rollout.correction=tis", *ARMS[arm]]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8, help="measured steps per round")
    ap.add_argument("--warmup", type=int, default=2, help="steps left out of the figures")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="trainer.threads (0: torch's default)")
    ap.add_argument("--out", default=str(WORK / "overlap.json"))
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        model, data, out_dir, steps, arm = args.child
        child(model, data, out_dir, int(steps), args.threads, arm)
        return 0

    from mmrft import atomic
    from mmrft.data.synthetic import tokenizer_corpus, write_dataset
    from mmrft.models.tiny import make_tiny_model

    WORK.mkdir(parents=True, exist_ok=True)
    model = WORK / "model"
    if not (model / "config.json").is_file():
        make_tiny_model(model, corpus=tokenizer_corpus(), seed=0, overwrite=True)
    data = write_dataset("count", 256, WORK / "data", seed=2, difficulty=0)
    total = args.warmup + args.steps
    per_arm: dict[str, dict[str, list[float]]] = {a: {"step": [], "rollout": [], "wait": [], "wall": []} for a in ARMS}
    for r in range(args.rounds):
        order = list(ARMS) if r % 2 == 0 else list(ARMS)[::-1]
        for arm in order:
            out_dir = WORK / "runs" / f"{arm}-r{r}"
            t0 = time.time()
            subprocess.run([sys.executable, __file__, "--threads", str(args.threads), "--child", str(model),
                            str(data), str(out_dir), str(total), arm], check=True)
            rows = [json.loads(x) for x in (out_dir / "metrics.jsonl").read_text().splitlines()]
            rows = [x for x in rows if x["phase"] == "train" and x["step"] > args.warmup]
            per_arm[arm]["step"] += [x["time/step"] for x in rows]
            per_arm[arm]["rollout"] += [x["time/rollout"] for x in rows]
            per_arm[arm]["wait"] += [x.get("time/rollout_wait", x["time/rollout"]) for x in rows]
            per_arm[arm]["wall"].append(time.time() - t0)
    summary = {arm: {k: statistics.median(v) for k, v in m.items() if k != "wall"} | {"wall_s": m["wall"]}
               for arm, m in per_arm.items()}
    speedup = summary["plain"]["step"] / summary["overlap"]["step"]
    result = {
        "benchmark": "overlap", "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "settings": {"steps": args.steps, "warmup": args.warmup, "rounds": args.rounds, "threads": args.threads,
                     "config": "mmrft/configs/demo_grpo.yaml", "correction": "tis", "model": "tiny Qwen2-VL"},
        "median_s": summary, "speedup": speedup, "per_step": per_arm,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out, json.dumps(result, indent=2))
    print(f"{'arm':<8} {'s/step':>7} {'rollout s':>9} {'waited s':>8}")
    for arm, s in summary.items():
        print(f"{arm:<8} {s['step']:>7.2f} {s['rollout']:>9.2f} {s['wait']:>8.2f}")
    print(f"speed-up: {speedup:.2f}x\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
