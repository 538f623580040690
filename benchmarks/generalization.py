"""What RL learns beyond its training data: SFT alone vs SFT+GRPO with the same labelled budget, trained on
counting circles and tested in distribution and on shifts, with paired-bootstrap confidence intervals.

    python benchmarks/generalization.py                 # the full run (tens of minutes on 2 CPU cores)
    python benchmarks/generalization.py --quick         # a smoke test of the whole path (a minute or two)
    python benchmarks/generalization.py --seed 1 --out benchmarks/results/generalization-seed1.json

The two arms share everything up to the SFT checkpoint:

* `sft`: the tiny Qwen2-VL of the demo (`mmrft demo`), SFT on 256 labelled `count` scenes at difficulty 0 (1-5 red,
  green, blue or yellow circles, nothing else) with the demo's settings (`demo_sft.yaml`);
* `sft_grpo`: that checkpoint, then the demo's GRPO (`demo_grpo.yaml`) on 4,096 fresh unlabelled scenes of the same
  distribution, rewarded by the `count` checker only.

No knob is chosen here: both arms run the demo's settings (set to fit its time budget, never on a test split). The
GRPO run logs validation splits (their own seeds) as it goes, for the curves (`data.eval` with several splits).

The test splits (200 items each, seeds never used for training or validation):

| split | what changes from training |
|---|---|
| `id` | nothing: count at difficulty 0 |
| `squares_and_more` | count at difficulty 1: circles or squares (squares never seen in training), up to 7, plus 1-3 shapes of the other kind in the same colour |
| `colour_distractors` | count at difficulty 2: up to 9 of the asked colour and kind, smaller, plus shapes of other colours |
| `compare` | another task: "which shape is larger?" with two options (its format never seen in training) |

Each arm's checkpoint answers every split greedily (`mmrft.eval.runner.evaluate_held_out`); per split the JSON
holds both accuracies, the difference and its paired-bootstrap 95% interval and p-value (`mmrft.eval.stats`, the
same as `mmrft eval compare`), the settings, the machine and the wall time of each arm.
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

OUT = ROOT / "benchmarks" / "results" / "generalization.json"
TRAIN_TASK, TRAIN_DIFFICULTY = "count", 0
# split -> (task, difficulty, seed); the demo uses seeds 1 (labelled), 2 (RL), 3 (its test set)
TEST_SPLITS = {"id": ("count", 0, 11), "squares_and_more": ("count", 1, 12), "colour_distractors": ("count", 2, 13),
               "compare": ("compare", 0, 14)}
VAL_SPLITS = {"id": ("count", 0, 21), "squares_and_more": ("count", 1, 22), "colour_distractors": ("count", 2, 23),
              "compare": ("compare", 0, 24)}


def write_splits(root: Path, splits: dict, n: int) -> dict[str, str]:
    from mmrft.data.synthetic import write_dataset

    return {name: str(write_dataset(task, n, root / name, seed=seed, difficulty=d))
            for name, (task, d, seed) in splits.items()}


def score(checkpoint: str, paths: dict[str, str]) -> dict[str, list[float]]:
    """Per split, each item's correctness (1/0) for the checkpoint, greedy, as the demo's evaluation decodes."""
    from mmrft.config import load_config
    from mmrft.data.sources import load_samples
    from mmrft.demo import config_path
    from mmrft.eval.runner import evaluate_held_out
    from mmrft.models.load import load_policy, resolve_device
    from mmrft.rewards.scoring import Scorer
    from mmrft.train.data import fit_to_model

    cfg = load_config(config_path("demo_grpo.yaml"), [f"model.path={checkpoint}"])
    model, processor = load_policy(cfg.model, resolve_device())
    scorer = Scorer.from_config(cfg)
    out = {}
    try:
        for name, path in paths.items():
            samples = fit_to_model(load_samples(path), cfg, model, processor, f"split {name}")
            res = evaluate_held_out(cfg, model, processor, samples, scorer)
            by_id = {r["id"]: float(r["correct"]) for r in res.records}
            out[name] = [by_id[s.id] for s in samples]
    finally:
        scorer.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny budgets: checks the path, measures nothing")
    ap.add_argument("--seed", type=int, default=0, help="the tiny model's weights, SFT and GRPO sampling")
    ap.add_argument("--workdir", default=None, help="run directory (default: benchmarks/results/generalization/)")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--n-test", type=int, default=200)
    args = ap.parse_args(argv)

    from mmrft import atomic
    from mmrft.config import load_config
    from mmrft.data.synthetic import tokenizer_corpus, write_dataset
    from mmrft.demo import SEEDS, config_path
    from mmrft.eval.stats import paired_bootstrap
    from mmrft.models.tiny import make_tiny_model
    from mmrft.train.rl import train_rl
    from mmrft.train.sft import train_sft

    work = Path(args.workdir or ROOT / "benchmarks" / "results" / "generalization" / f"seed{args.seed}")
    work.mkdir(parents=True, exist_ok=True)
    n_lab, n_rl, n_test, n_val = (32, 64, 16, 8) if args.quick else (256, 4096, args.n_test, 100)
    sft_over = ["sft.steps=5"] if args.quick else []
    rl_over = ["trainer.steps=2", "trainer.eval_every=0"] if args.quick else ["trainer.eval_every=100"]
    t0 = time.time()
    model_dir = make_tiny_model(work / "model", corpus=tokenizer_corpus(), seed=args.seed, overwrite=True)
    labelled = write_dataset(TRAIN_TASK, n_lab, work / "data" / "labelled", seed=SEEDS["labelled"],
                             difficulty=TRAIN_DIFFICULTY)
    rl_data = write_dataset(TRAIN_TASK, n_rl, work / "data" / "rl", seed=SEEDS["rl"], difficulty=TRAIN_DIFFICULTY)
    tests = write_splits(work / "data" / "test", TEST_SPLITS, n_test)
    vals = write_splits(work / "data" / "val", VAL_SPLITS, n_val)

    sft = train_sft(load_config(config_path("demo_sft.yaml"), [
        f"model.path={model_dir}", f"data.train={labelled}", f"trainer.output_dir={work / 'sft'}",
        "trainer.overwrite=true", f"trainer.seed={args.seed}", *sft_over]))
    t_sft = time.time()
    val_map = "{" + ", ".join(f"{k}: {v}" for k, v in vals.items()) + "}"
    rl = train_rl(load_config(config_path("demo_grpo.yaml"), [
        f"model.path={sft['checkpoint']}", f"data.train={rl_data}", f"data.eval={val_map}",
        f"trainer.output_dir={work / 'grpo'}", "trainer.overwrite=true", f"trainer.seed={args.seed}",
        "trainer.progress=false", *rl_over]))
    t_rl = time.time()
    arms = {"sft": score(sft["checkpoint"], tests), "sft_grpo": score(rl["checkpoint"], tests)}
    splits = {}
    for name in TEST_SPLITS:
        a, b = arms["sft"][name], arms["sft_grpo"][name]
        boot = paired_bootstrap(a, b, seed=args.seed)
        splits[name] = {"task": TEST_SPLITS[name][0], "difficulty": TEST_SPLITS[name][1], "n": len(a),
                        "sft": sum(a) / len(a), "sft_grpo": sum(b) / len(b), "delta": boot.delta,
                        "ci95": [boot.low, boot.high], "p_value": boot.p_value}
    result = {
        "benchmark": "generalization", "quick": args.quick, "seed": args.seed,
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "train": {"task": TRAIN_TASK, "difficulty": TRAIN_DIFFICULTY, "labelled": n_lab, "rl_items": n_rl,
                  "sft_config": "mmrft/configs/demo_sft.yaml", "grpo_config": "mmrft/configs/demo_grpo.yaml",
                  "overrides": {"sft": sft_over, "grpo": rl_over}},
        "splits": splits,
        "minutes": {"sft_arm": (t_sft - t0) / 60, "grpo_stage": (t_rl - t_sft) / 60,
                    "total": (time.time() - t0) / 60},
        "validation_curves": str(work / "grpo" / "metrics.jsonl"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out, json.dumps(result, indent=2))
    print(f"{'split':<20} {'n':>4} {'SFT':>7} {'SFT+GRPO':>9} {'delta':>7}  95% CI")
    for name, s in splits.items():
        print(f"{name:<20} {s['n']:>4} {100 * s['sft']:>6.1f}% {100 * s['sft_grpo']:>8.1f}% "
              f"{100 * s['delta']:>+6.1f}  [{100 * s['ci95'][0]:+.1f}, {100 * s['ci95'][1]:+.1f}]")
    print(f"wrote {out} ({result['minutes']['total']:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
