"""The tools demo over several seeds, and its gains pooled over them.

    python benchmarks/demo_tools_seeds.py                      # seeds 0, 1, 2: three demos, about 75 min on 2 CPUs
    python benchmarks/demo_tools_seeds.py --seeds 0 1 2 3 4
    python benchmarks/demo_tools_seeds.py --quick              # a smoke test of the whole path (a few minutes)

One `mmrft demo --modality tools --seed S` per seed, in DIR/seed_S (a seed whose demo there finished, with its
held-out records, is read back rather than run again, unless --rerun). The seed draws the tiny model's weights and
seeds SFT and GRPO; the data is the same for every seed, so every seed's three models answer the same 200 test items.
Reported per seed: the table's accuracies and each gain the demo prints ((c) - (b): what GRPO adds to the tool-using
model; (c) - (a): what the tools add) with its paired interval. Pooled: each gain averaged over the seeds item by item,
with the interval of a paired bootstrap over the items (`mmrft.eval.records.pooled_gain`). That interval counts the
test items' noise only; the spread between seeds shows in the per-seed rows (a handful of seeds cannot estimate it).
The JSON (benchmarks/results/demo_tools_seeds.json, or --json) holds all of it.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mmrft import atomic  # noqa: E402
from mmrft.demo_tools import GAINS, RECIPES, held_out_records  # noqa: E402
from mmrft.eval.records import gain_line, pooled_gain, read_records  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "demo_tools_seeds.json"


def finished(seed_dir: Path) -> bool:
    """Whether a demo finished in `seed_dir`, with every recipe's records."""
    return (seed_dir / "demo_results.json").is_file() and all(held_out_records(seed_dir, r).is_file()
                                                              for r in RECIPES)


def summarize(seed_dirs: dict[int, Path]) -> dict:
    """Per seed, the accuracies and gains its demo reported; over the seeds, the mean accuracy of each recipe and each
    gain pooled item by item (`pooled_gain`)."""
    per_seed, records = {}, {}
    for seed, seed_dir in seed_dirs.items():
        result = json.loads((seed_dir / "demo_results.json").read_text())
        task = result["task"]
        records[seed] = {r: read_records(held_out_records(seed_dir, r)) for r in RECIPES}
        per_seed[seed] = {"accuracy": {r: result["results"][r]["per_task"][task]["accuracy"] for r in RECIPES},
                          "gains": result["gains"], "minutes": result["minutes"],
                          "selected_step": {r: result["results"][r].get("selected_step") for r in RECIPES}}
    seeds = list(seed_dirs)
    pooled = {f"{a}->{b}": pooled_gain([(records[s][a], records[s][b]) for s in seeds]) for a, b in GAINS}
    mean_accuracy = {r: sum(per_seed[s]["accuracy"][r] for s in seeds) / len(seeds) for r in RECIPES}
    return {"seeds": seeds, "per_seed": per_seed, "mean_accuracy": mean_accuracy, "pooled": pooled}


def report(summary: dict) -> str:
    """The per-seed table and the pooled gains, as printed."""
    seeds = summary["seeds"]
    head = "| seed | " + " | ".join(RECIPES.values()) + " | " + " | ".join(f"{RECIPES[b][:3]} - {RECIPES[a][:3]}"
                                                                          for a, b in GAINS) + " |"
    lines = [head, "|" + "---:|" * (1 + len(RECIPES) + len(GAINS))]
    for s in seeds:
        row = summary["per_seed"][s]
        cells = [f"{100 * row['accuracy'][r]:.1f} %" for r in RECIPES]
        cells += [f"{row['gains'][f'{a}->{b}']['points']:+.1f}" for a, b in GAINS]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    mean = [f"{100 * summary['mean_accuracy'][r]:.1f} %" for r in RECIPES]
    mean += [f"{summary['pooled'][f'{a}->{b}']['points']:+.1f}" for a, b in GAINS]
    lines.append("| mean | " + " | ".join(mean) + " |")
    lines.append("")
    for a, b in GAINS:
        label = f"mean over seeds {', '.join(map(str, seeds))}, {RECIPES[b][:3]} - {RECIPES[a][:3]}"
        lines.append(gain_line(label, summary["pooled"][f"{a}->{b}"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from mmrft.demo import run_demo

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "demo-tools-seeds", help="one demo per seed: OUT/seed_S")
    p.add_argument("--rerun", action="store_true", help="run every seed's demo again, even where one finished")
    p.add_argument("--quick", action="store_true", help="a few steps of everything (the figures mean nothing)")
    p.add_argument("--json", type=Path, default=None, help=f"where to write the results (default {OUT})")
    args = p.parse_args(argv)
    out = args.out / "quick" if args.quick else args.out
    seed_dirs = {s: out / f"seed_{s}" for s in args.seeds}
    for seed, seed_dir in seed_dirs.items():
        if args.rerun or args.quick or not finished(seed_dir):
            print(f"== seed {seed}: mmrft demo --modality tools --seed {seed} --out {seed_dir}", flush=True)
            run_demo(seed_dir, quick=args.quick, modality="tools", seed=seed)
        else:
            print(f"== seed {seed}: read back from {seed_dir}", flush=True)
    summary = summarize(seed_dirs)
    text = report(summary)
    print("\n" + text)
    summary.update(quick=args.quick, out=str(out), machine=platform.platform(), python=platform.python_version())
    path = args.json or (out / "demo_tools_seeds.json" if args.quick else OUT)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, json.dumps(summary, indent=1))
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
