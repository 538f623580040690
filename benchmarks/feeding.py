"""Feeding RL what it can learn from: plain GRPO against online difficulty filtering, a difficulty curriculum and
rollout-time augmentation (NoisyRollout), each from the same SFT checkpoint on the same number of completions.

    python benchmarks/feeding.py                        # the full run (about half an hour on 2 CPU cores)
    python benchmarks/feeding.py --quick                # a smoke test of the whole path (a few minutes)
    python benchmarks/feeding.py --seed 1 --out benchmarks/results/feeding-seed1.json
    python benchmarks/feeding.py --sft RUN/sft/final    # reuse an SFT checkpoint of the same seed's tiny model

What every arm shares:

* the tiny Qwen2-VL of the demo, SFT on 256 labelled `count` scenes at difficulty 0 with the demo's settings
  (`demo_sft.yaml`), exactly the SFT arm of `benchmarks/generalization.py`;
* the demo's GRPO (`demo_grpo.yaml`: 300 steps x 8 prompts x G = 8, i.e. 19,200 completions) on one pool of 4,095
  unlabelled counting scenes, a third at each difficulty 0, 1 and 2 (difficulty 1 adds squares and distractor shapes,
  2 adds other colours and up to 9 objects; `mmrft.data.synthetic`), rewarded by the `count` checker only.

What differs (`ARMS`), every knob at its documented default, set before any run and never chosen on a test split:

| arm | setting |
|---|---|
| `grpo` | `data.sampler=uniform`: each epoch a fresh permutation (the plain loop) |
| `pass_rate` | `data.sampler=pass_rate`: prompts whose last measured pass rate is outside [0.1, 0.9] drawn 10x less often |
| `curriculum` | `data.sampler=difficulty`: difficulty 0 first, the next level once the running pass rate reaches 0.7 |
| `noisy_rollout` | `rollout.augment=gaussian`: half of each group sampled on a noised image, the noise annealed (sigmoid) |

Every arm draws the same number of completions per step, so equal steps are equal completions (the JSON records
both). Test splits (200 items each per difficulty, seeds never used for training or validation) are answered greedily
by each arm's final checkpoint; per split the JSON holds each arm's accuracy and its difference to `grpo` with the
paired-bootstrap 95% interval (`mmrft.eval.stats`, as `mmrft eval compare`). Validation splits (their own seeds) are
logged every 100 steps for the curves.
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
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from generalization import score, write_splits  # noqa: E402  (the same SFT recipe and scoring)

OUT = ROOT / "benchmarks" / "results" / "feeding.json"
TASK, SFT_DIFFICULTY, POOL_DIFFICULTIES = "count", 0, (0, 1, 2)
# split -> (task, difficulty, seed); generalization.py's test and validation seeds for the same difficulties
TEST_SPLITS = {"d0": ("count", 0, 11), "d1": ("count", 1, 12), "d2": ("count", 2, 13)}
VAL_SPLITS = {"d0": ("count", 0, 21), "d1": ("count", 1, 22), "d2": ("count", 2, 23)}
ARMS: dict[str, list[str]] = {
    "grpo": ["data.sampler=uniform"],
    "pass_rate": ["data.sampler=pass_rate"],
    "curriculum": ["data.sampler=difficulty"],
    "noisy_rollout": ["rollout.augment=gaussian"],
}


def write_pool(root: Path, n: int, seed: int) -> Path:
    """One jsonl of `n` count scenes, difficulties 0, 1, 2 interleaved (item j has difficulty j % 3); the media stay
    in each difficulty's own directory, referenced relative to the pool's jsonl."""
    from mmrft import atomic
    from mmrft.data.synthetic import write_dataset

    per = -(-n // len(POOL_DIFFICULTIES))
    parts = []
    for d in POOL_DIFFICULTIES:
        path = write_dataset(TASK, per, root / f"d{d}", seed=seed, difficulty=d)
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        for row in rows:
            row["images"] = [f"d{d}/{img}" for img in row["images"]]
        parts.append(rows)
    rows = [part[i] for i in range(per) for part in parts][:n]
    out = root / "data.jsonl"
    atomic.write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny budgets: checks the path, measures nothing")
    ap.add_argument("--seed", type=int, default=0, help="the tiny model's weights, SFT and GRPO sampling")
    ap.add_argument("--workdir", default=None, help="run directory (default: benchmarks/results/feeding/seedN/)")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--sft", default=None, help="an SFT checkpoint to start from (skips the SFT stage)")
    ap.add_argument("--arms", default=",".join(ARMS), help="comma-separated subset of " + ", ".join(ARMS))
    ap.add_argument("--n-test", type=int, default=200)
    args = ap.parse_args(argv)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = sorted(set(arms) - set(ARMS))
    if unknown or "grpo" not in arms:
        ap.error(f"--arms: unknown {unknown}; known: {', '.join(ARMS)} (grpo, the baseline, is required)")

    from mmrft import atomic
    from mmrft.config import load_config
    from mmrft.data.synthetic import tokenizer_corpus, write_dataset
    from mmrft.demo import SEEDS, config_path
    from mmrft.eval.stats import paired_bootstrap
    from mmrft.models.tiny import make_tiny_model
    from mmrft.train.rl import train_rl
    from mmrft.train.sft import train_sft

    work = Path(args.workdir or ROOT / "benchmarks" / "results" / "feeding" / f"seed{args.seed}")
    work.mkdir(parents=True, exist_ok=True)
    n_lab, n_pool, n_test, n_val = (32, 48, 12, 6) if args.quick else (256, 4095, args.n_test, 100)
    sft_over = ["sft.steps=5"] if args.quick else []
    rl_over = ["trainer.steps=3", "trainer.eval_every=0"] if args.quick else \
        ["trainer.eval_every=100"]
    t0 = time.time()
    pool = write_pool(work / "data" / "pool", n_pool, SEEDS["rl"])
    tests = write_splits(work / "data" / "test", TEST_SPLITS, n_test)
    vals = write_splits(work / "data" / "val", VAL_SPLITS, n_val)
    if args.sft:
        sft_ckpt = args.sft
    else:
        model_dir = make_tiny_model(work / "model", corpus=tokenizer_corpus(), seed=args.seed, overwrite=True)
        labelled = write_dataset(TASK, n_lab, work / "data" / "labelled", seed=SEEDS["labelled"],
                                 difficulty=SFT_DIFFICULTY)
        sft_ckpt = train_sft(load_config(config_path("demo_sft.yaml"), [
            f"model.path={model_dir}", f"data.train={labelled}", f"trainer.output_dir={work / 'sft'}",
            "trainer.overwrite=true", f"trainer.seed={args.seed}", *sft_over]))["checkpoint"]
    minutes = {"sft": (time.time() - t0) / 60}
    val_map = "{" + ", ".join(f"{k}: {v}" for k, v in vals.items()) + "}"
    checkpoints, budget = {"sft": sft_ckpt}, {}
    for arm in arms:
        t = time.time()
        cfg = load_config(config_path("demo_grpo.yaml"), [
            f"model.path={sft_ckpt}", f"data.train={pool}", f"data.eval={val_map}",
            f"trainer.output_dir={work / arm}", "trainer.overwrite=true", f"trainer.seed={args.seed}",
            "trainer.progress=false", *ARMS[arm], *rl_over])
        checkpoints[arm] = train_rl(cfg)["checkpoint"]
        ro = cfg.rollout
        budget[arm] = {"steps": cfg.trainer.steps, "completions": cfg.trainer.steps * ro.prompts_per_step *
                       ro.group_size, "settings": ARMS[arm]}
        minutes[arm] = (time.time() - t) / 60
    if len({b["completions"] for b in budget.values()}) != 1:
        raise RuntimeError(f"the arms drew unequal numbers of completions: {budget}")
    scores = {name: score(ckpt, tests) for name, ckpt in checkpoints.items()}
    splits = {}
    for split in [*TEST_SPLITS, "all"]:
        per_arm = {name: (s[split] if split != "all" else [x for k in TEST_SPLITS for x in s[k]])
                   for name, s in scores.items()}
        base = per_arm["grpo"]
        row = {"n": len(base), "accuracy": {name: sum(v) / len(v) for name, v in per_arm.items()}, "vs_grpo": {}}
        for name in [*arms[1:], "sft"]:
            if name == "grpo":
                continue
            boot = paired_bootstrap(base, per_arm[name], seed=args.seed)
            row["vs_grpo"][name] = {"delta": boot.delta, "ci95": [boot.low, boot.high], "p_value": boot.p_value}
        splits[split] = row
    minutes["total"] = (time.time() - t0) / 60
    result = {
        "benchmark": "feeding", "quick": args.quick, "seed": args.seed,
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "sft": {"checkpoint": str(sft_ckpt), "task": TASK, "difficulty": SFT_DIFFICULTY, "labelled": n_lab,
                "config": "mmrft/configs/demo_sft.yaml", "overrides": sft_over, "reused": bool(args.sft)},
        "pool": {"task": TASK, "difficulties": list(POOL_DIFFICULTIES), "items": n_pool},
        "grpo": {"config": "mmrft/configs/demo_grpo.yaml", "overrides": rl_over},
        "arms": budget, "splits": splits, "minutes": minutes,
        "validation_curves": {arm: str(work / arm / "metrics.jsonl") for arm in arms},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out, json.dumps(result, indent=2))
    names = ["sft", *arms]
    print(f"{'split':<6} {'n':>4} " + " ".join(f"{n:>14}" for n in names))
    for split, row in splits.items():
        cells = []
        for n in names:
            acc = f"{100 * row['accuracy'][n]:.1f}%"
            if n in row["vs_grpo"]:
                acc += f" ({100 * row['vs_grpo'][n]['delta']:+.1f})"
            cells.append(f"{acc:>14}")
        print(f"{split:<6} {row['n']:>4} " + " ".join(cells))
    print(f"wrote {out} ({minutes['total']:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
