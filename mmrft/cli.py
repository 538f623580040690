"""The `mmrft` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys

# Every model and dataset is read from local paths; never reach for a hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _cmd_make_tiny_model(args) -> int:
    from mmrft.data.prompts import prompt_corpus
    from mmrft.data.synthetic import task_corpus
    from mmrft.models.tiny import make_tiny_model

    out = make_tiny_model(args.out, arch=args.arch, size=args.size, corpus=task_corpus() + prompt_corpus(), seed=args.seed,
                          overwrite=args.overwrite)
    print(f"wrote {args.arch} ({args.size}) to {out}")
    return 0


def _cmd_synth(args) -> int:
    from mmrft.data.synthetic import get_task, write_dataset

    for name in args.task:
        get_task(name)  # unknown names fail before anything is written
    path = write_dataset(args.task if len(args.task) > 1 else args.task[0], args.n, args.out, seed=args.seed,
                         difficulty=args.difficulty, image_size=args.image_size)
    print(f"wrote {args.n} samples to {path}")
    return 0


def _load_cfg(args):
    from mmrft.config import config_to_yaml, load_config

    cfg = load_config(args.config, args.overrides)
    if getattr(args, "print_config", False):
        print(config_to_yaml(cfg))
        sys.exit(0)
    return cfg


def _cmd_sft(args) -> int:
    from mmrft.train.sft import train_sft

    res = train_sft(_load_cfg(args))
    print(f"SFT checkpoint: {res['checkpoint']}")
    return 0


def _cmd_train(args) -> int:
    from mmrft.report.plots import plot_reward_accuracy
    from mmrft.train.rl import train_rl

    res = train_rl(_load_cfg(args))
    res["plot"] = str(plot_reward_accuracy(res["run_dir"]))
    if res["eval_before"] and res["eval_after"]:
        from mmrft.report.table import comparison_table

        print(comparison_table(res["eval_before"], res["eval_after"], "before RL", "after RL"))
    print(f"checkpoint: {res['checkpoint']}\nplot: {res['plot']}")
    return 0


def _cmd_demo(args) -> int:
    from mmrft.demo import run_demo

    run_demo(args.out, quick=args.quick, overrides=args.overrides)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmrft", description="Reinforcement fine-tuning of multimodal LLMs.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("make-tiny-model", help="build a tiny random VLM with a locally trained tokenizer",
                       description="Write a tiny, randomly initialised model of a real architecture to OUT.")
    s.add_argument("out", help="output directory")
    s.add_argument("--arch", default="qwen2_vl", choices=["qwen2_vl", "qwen2_5_vl"])
    s.add_argument("--size", default="tiny", choices=["tiny", "small"], help="tiny ~2.4M params, small ~30M")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    s.set_defaults(fn=_cmd_make_tiny_model)

    s = sub.add_parser("synth", help="generate a procedural visual task with known answers",
                       description="Write DIR/data.jsonl and DIR/images/ for one (or several, mixed) synthetic tasks.")
    s.add_argument("task", nargs="+", help="task name(s): count, arithmetic, compare, ground")
    s.add_argument("--n", type=int, required=True, help="number of samples")
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--difficulty", type=int, default=0, help="0 = easiest")
    s.add_argument("--image-size", type=int, default=112)
    s.set_defaults(fn=_cmd_synth)

    for name, fn, help_ in (
        ("sft", _cmd_sft, "supervised cold start (reasoning-then-answer targets)"),
        ("train", _cmd_train, "RL fine-tuning (GRPO and friends)"),
    ):
        s = sub.add_parser(name, help=help_, description=f"{help_}. CONFIG is a YAML file (see examples/); "
                           "overrides are dotted key=value pairs, e.g. trainer.steps=50 model.path=/ckpt")
        s.add_argument("config", help="YAML config file")
        s.add_argument("overrides", nargs="*", help="key.sub=value overrides")
        s.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
        s.set_defaults(fn=fn)

    s = sub.add_parser("demo", help="tiny model + synthetic counting: SFT, then GRPO, held-out table",
                       description="Build the tiny model, generate data, run SFT then GRPO, and print held-out "
                       "accuracy of the SFT model vs the SFT+GRPO model.")
    s.add_argument("--out", default="runs/demo", help="directory for the model, data and runs")
    s.add_argument("--quick", action="store_true", help="a few steps only (a smoke test of the whole path)")
    s.add_argument("overrides", nargs="*", help="overrides for the RL config, e.g. trainer.steps=100")
    s.set_defaults(fn=_cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    for noisy in ("httpx", "urllib3", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from mmrft.errors import MmrftError

    try:
        return args.fn(args)
    except (MmrftError, FileExistsError, FileNotFoundError, KeyError, ValueError) as e:
        if args.verbose:
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
