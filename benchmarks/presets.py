"""Compare the algorithm presets on the synthetic counting task: same SFT start, same budget, same seed.

    python benchmarks/presets.py --steps 150 [--sft-checkpoint runs/demo/sft/final] [--out benchmarks/results/presets]

Builds the demo's tiny model and data (or reuses an SFT checkpoint), runs `mmrft train` logic once per preset from
that checkpoint, and writes `presets.json` (held-out accuracy and reward before/after, seconds, final training
reward per preset), `presets.md` (the table) and `reward_curves.png` (smoothed training reward per preset), plus
each preset's run directory with its own metrics and curve.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from mmrft import atomic
from mmrft.config import load_config
from mmrft.data.synthetic import tokenizer_corpus, write_dataset
from mmrft.demo import DEMOS, SEEDS, config_path
from mmrft.models.tiny import make_tiny_model
from mmrft.presets import preset_names
from mmrft.report.plots import plot_reward_accuracy
from mmrft.track.metrics import read_metrics
from mmrft.train.rl import train_rl
from mmrft.train.sft import train_sft

RUNNABLE = preset_names()
# the image demo's data budget and task
_DEMO = DEMOS["image"]
TASK, N_LABELLED, N_RL, N_TEST = _DEMO.task, _DEMO.n_labelled, _DEMO.n_rl, _DEMO.n_test
# The shared budget (the demo's GRPO batch shape and learning rate); everything algorithmic comes from the preset.
BUDGET = ["rollout.group_size=8", "rollout.prompts_per_step=8", "rollout.max_new_tokens=32",
          "rollout.temperature=1.0", "trainer.lr=1e-4", "data.prompt_format=r1"]


def _sft_checkpoint(out: Path) -> Path:
    model = make_tiny_model(out / "model", corpus=tokenizer_corpus(), overwrite=True)
    labelled = write_dataset(TASK, N_LABELLED, out / "data" / "labelled", seed=SEEDS["labelled"])
    cfg = load_config(config_path("demo_sft.yaml"), [
        f"model.path={model}", f"data.train={labelled}", f"trainer.output_dir={out / 'sft'}", "trainer.overwrite=true",
    ])
    return Path(train_sft(cfg)["checkpoint"])


def _plot_curves(runs: dict[str, Path], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, run_dir in runs.items():
        rows = [r for r in read_metrics(run_dir) if r["phase"] == "train"]
        vals, smooth = [r["reward/mean"] for r in rows], []
        for i in range(len(vals)):
            window = vals[max(0, i - 19) : i + 1]
            smooth.append(sum(window) / len(window))
        ax.plot([r["step"] for r in rows], smooth, label=name)
    ax.set_xlabel("RL step")
    ax.set_ylabel("train reward (mean, 20-step smoothing)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = out / "reward_curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=150, help="RL steps per preset")
    ap.add_argument("--presets", nargs="*", default=RUNNABLE)
    ap.add_argument("--sft-checkpoint", help="start from this checkpoint instead of training the demo's SFT model")
    ap.add_argument("--out", default="benchmarks/results/presets")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = Path(args.sft_checkpoint) if args.sft_checkpoint else _sft_checkpoint(out)
    fresh = write_dataset(TASK, N_RL, out / "data" / "rl", seed=SEEDS["rl"])
    test = write_dataset(TASK, N_TEST, out / "data" / "test", seed=SEEDS["test"])

    results, runs = {}, {}
    for name in args.presets:
        run_dir = out / name
        done = run_dir / "benchmark.json"  # a finished preset is reused when the benchmark is re-run
        key = {"steps": args.steps, "seed": args.seed, "start": str(start)}
        if done.is_file() and json.loads(done.read_text()).get("key") == key:
            results[name], runs[name] = json.loads(done.read_text())["result"], run_dir
            print(f"{name}: reused {done}", flush=True)
            continue
        cfg = load_config(None, [
            f"algorithm.name={name}", f"model.path={start}", f"data.train={fresh}", f"data.eval={test}",
            f"trainer.output_dir={run_dir}", "trainer.overwrite=true", f"trainer.steps={args.steps}",
            f"trainer.seed={args.seed}", "trainer.eval_every=0", "trainer.progress=false", *BUDGET,
        ])
        t0 = time.time()
        res = train_rl(cfg)
        plot_reward_accuracy(run_dir, title=name)
        rows = [r for r in read_metrics(run_dir) if r["phase"] == "train"]
        last = rows[-20:]
        results[name] = {
            "accuracy_before": res["eval_before"][TASK]["accuracy"],
            "accuracy_after": res["eval_after"][TASK]["accuracy"],
            "reward_after": res["eval_after"][TASK]["reward"],
            "train_reward_last20": sum(r["reward/mean"] for r in last) / len(last),
            # the budget actually spent: every completion sampled (DAPO-style resampling draws extra rounds of
            # prompts) and every optimizer update (epochs x minibatches per step)
            "completions": int(sum(r["filter/groups_drawn"] for r in rows) * cfg.rollout.group_size),
            "updates": args.steps * cfg.algorithm.ppo_epochs * cfg.algorithm.minibatches,
            "seconds": time.time() - t0,
            "algorithm": vars(cfg.algorithm),
        }
        runs[name] = run_dir
        atomic.write_text(done, json.dumps({"key": key, "result": results[name]}, default=str))
        print(f"{name}: {100 * results[name]['accuracy_before']:.1f}% -> {100 * results[name]['accuracy_after']:.1f}%"
              f" in {results[name]['seconds']:.0f} s", flush=True)

    table = ["| preset | held-out acc before | after | Δ | train reward (last 20 steps) | completions | updates | "
             "seconds |", "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        before, after = 100 * r["accuracy_before"], 100 * r["accuracy_after"]
        table.append(f"| `{name}` | {before:.1f}% | {after:.1f}% | {after - before:+.1f} | "
                     f"{r['train_reward_last20']:.3f} | {r.get('completions', '?')} | {r.get('updates', '?')} | "
                     f"{r['seconds']:.0f} |")
    meta = {"command": " ".join([sys.executable, *sys.argv]), "steps": args.steps, "seed": args.seed,
            "start_checkpoint": str(start), "n_test": N_TEST, "cpus": os.cpu_count(), "torch": torch.__version__,
            "python": platform.python_version()}
    atomic.write_text(out / "presets.json", json.dumps({"meta": meta, "results": results}, indent=2, default=str))
    atomic.write_text(out / "presets.md", "\n".join(table) + "\n")
    _plot_curves(runs, out)
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
