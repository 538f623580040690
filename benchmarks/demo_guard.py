"""Choosing a guard for the multi-image demo at difficulty 1, on a validation split.

    python benchmarks/demo_guard.py                 # SFT once, then one GRPO run per guard (about 45 min, 2 CPUs)
    python benchmarks/demo_guard.py --quick         # a smoke test of the whole path (a few minutes)
    python benchmarks/demo_guard.py --guards none,kl

At difficulty 0 (`mmrft demo --modality multi-image` before this benchmark) SFT alone answered 100% of the held-out
items, so RL had nothing to do. At difficulty 1 (counts differ by 1 or more, more objects) an earlier run improved
for 200 steps and then collapsed (every answer ended after ~6 tokens, reward 0 from step 251 on). This script runs
the demo's own recipe at difficulty 1 - the same tiny Qwen2-VL, data seeds, SFT and `demo_grpo.yaml` - once per guard
in `GUARDS`, all from one SFT checkpoint and on the same number of completions, with the training-health alarms at
their defaults. Every run evaluates a validation split (its own seed, never used for training) and the demo's
held-out test split every `--eval-every` steps; the guard is chosen by the *validation* accuracy of the final model
(ties: the simpler guard, in `GUARDS` order), and the test split is only reported. The JSON holds, per guard, the
validation and test curves, the alarms that fired (first step of each) and the final accuracies.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

OUT = ROOT / "benchmarks" / "results" / "demo_guard.json"
MODALITY, DIFFICULTY, VAL_SEED = "multi-image", 1, 4  # demo seeds: labelled 1, rl 2, test 3
# guard -> overrides of demo_grpo.yaml; the order is the tie-break (simplest first)
GUARDS: dict[str, list[str]] = {
    "none": [],
    "lower_lr": ["trainer.lr=5.0e-5"],
    "kl": ["algorithm.kl_coef=0.02"],
}


def curves(metrics_path: Path, patience: int) -> tuple[dict, dict]:
    """Per split, step -> held-out accuracy; per alarm, the first step it fired, i.e. its condition (`health/<alarm>`
    = 1) held `patience` steps in a row (`heldout_drop` is logged as fired already), from the run's metrics.jsonl."""
    evals: dict[str, dict[int, float]] = {}
    alarms: dict[str, int] = {}
    streak: dict[str, int] = {}
    for line in metrics_path.read_text().splitlines():
        row = json.loads(line)
        step = int(row.get("step", -1))
        for key, value in row.items():
            if key.startswith("eval/") and key.endswith("/accuracy"):
                parts = key.split("/")  # eval/<split>/<task>/accuracy or eval/<split>/accuracy
                evals.setdefault(parts[1], {})[step] = float(value)
            elif key.startswith("health/"):
                name = key.split("/")[1]
                streak[name] = streak.get(name, 0) + 1 if value else 0
                need = 1 if name == "heldout_drop" else patience
                if streak[name] >= need and name not in alarms:
                    alarms[name] = step
    return evals, alarms


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny budgets: checks the path, measures nothing")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--guards", default=",".join(GUARDS), help="comma-separated subset of " + ", ".join(GUARDS))
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--workdir", default=None, help="default: benchmarks/results/demo_guard/seedN/")
    ap.add_argument("--sft", default=None, help="an SFT checkpoint of this recipe to start from (skips SFT)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    guards = [g.strip() for g in args.guards.split(",") if g.strip()]
    if not guards or set(guards) - set(GUARDS):
        ap.error(f"--guards: unknown {sorted(set(guards) - set(GUARDS))}; known: {', '.join(GUARDS)}")

    from mmrft import atomic
    from mmrft.config import load_config
    from mmrft.data.synthetic import tokenizer_corpus, write_dataset
    from mmrft.demo import DEMOS, SEEDS, config_path
    from mmrft.models.tiny import make_tiny_model
    from mmrft.train.rl import train_rl
    from mmrft.train.sft import train_sft

    spec = DEMOS[MODALITY]
    work = Path(args.workdir or ROOT / "benchmarks" / "results" / "demo_guard" / f"seed{args.seed}")
    work.mkdir(parents=True, exist_ok=True)
    n = {"labelled": spec.n_labelled, "rl": spec.n_rl, "test": spec.n_test, "val": spec.n_test}
    if args.quick:
        n = {k: min(v, 32) for k, v in n.items()}
    seeds = {**SEEDS, "val": VAL_SEED}
    t0 = time.time()
    data = {split: write_dataset(spec.task, k, work / "data" / split, seed=seeds[split], difficulty=DIFFICULTY)
            for split, k in n.items()}
    sft_over = [*spec.sft, *(["sft.steps=5"] if args.quick else [])]
    if args.sft:
        sft_ckpt = args.sft
    else:
        model_dir = make_tiny_model(work / "model", arch=spec.arch, corpus=tokenizer_corpus(), seed=args.seed,
                                    overwrite=True)
        sft_ckpt = train_sft(load_config(config_path("demo_sft.yaml"), [
            f"model.path={model_dir}", f"data.train={data['labelled']}", f"trainer.output_dir={work / 'sft'}",
            "trainer.overwrite=true", f"trainer.seed={args.seed}", *sft_over]))["checkpoint"]
    minutes = {"sft": (time.time() - t0) / 60}
    rl_over = ["trainer.steps=3", "trainer.eval_every=0"] if args.quick else [f"trainer.eval_every={args.eval_every}"]
    runs = {}
    for guard in guards:
        t = time.time()
        cfg = load_config(config_path("demo_grpo.yaml"), [
            f"model.path={sft_ckpt}", f"data.train={data['rl']}",
            f"data.eval={{val: {data['val']}, test: {data['test']}}}", f"trainer.output_dir={work / guard}",
            "trainer.overwrite=true", f"trainer.seed={args.seed}", "trainer.progress=false",
            *spec.rl, *GUARDS[guard], *rl_over])
        res = train_rl(cfg)
        evals, alarms = curves(Path(res["run_dir"]) / "metrics.jsonl", cfg.health.patience)
        split = res["eval_splits"]
        final = {name: (next(iter(v["after"].values()))["accuracy"] if v["after"] else None)
                 for name, v in split.items()}
        start = {name: (next(iter(v["before"].values()))["accuracy"] if v["before"] else None)
                 for name, v in split.items()}
        ro = cfg.rollout
        runs[guard] = {"overrides": GUARDS[guard], "stopped_at": res["stopped_at"], "start": start, "final": final,
                       "curves": evals, "alarms_first_step": alarms, "steps": cfg.trainer.steps,
                       "completions": cfg.trainer.steps * ro.prompts_per_step * ro.group_size,
                       "minutes": (time.time() - t) / 60}
        minutes[guard] = runs[guard]["minutes"]
    if len({r["completions"] for r in runs.values()}) != 1:
        raise RuntimeError(f"the guards drew unequal numbers of completions: {runs}")
    scored = [g for g in guards if runs[g]["final"].get("val") is not None]
    chosen = max(scored, key=lambda g: (runs[g]["final"]["val"], -guards.index(g))) if scored else None
    minutes["total"] = (time.time() - t0) / 60
    result = {
        "benchmark": "demo_guard", "quick": args.quick, "seed": args.seed, "modality": MODALITY,
        "task": spec.task, "difficulty": DIFFICULTY, "items": n, "data_seeds": seeds,
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "sft": {"checkpoint": str(sft_ckpt), "overrides": sft_over, "reused": bool(args.sft)},
        "chosen_on_validation": chosen, "runs": runs, "minutes": minutes,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out, json.dumps(result, indent=2))

    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}%"

    print(f"{'guard':<10} {'val start':>9} {'val final':>9} {'test start':>10} {'test final':>10}  alarms (first step)")
    for g, r in runs.items():
        al = ", ".join(f"{a}@{s}" for a, s in r["alarms_first_step"].items()) or "none"
        print(f"{g:<10} {pct(r['start'].get('val')):>9} {pct(r['final'].get('val')):>9} "
              f"{pct(r['start'].get('test')):>10} {pct(r['final'].get('test')):>10}  {al}")
    print(f"chosen on validation: {chosen}\nwrote {out} ({minutes['total']:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
