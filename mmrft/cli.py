"""The `mmrft` command."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys

# Every model and dataset is read from local paths; never reach for a hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _cmd_make_tiny_model(args) -> int:
    from mmrft.data.synthetic import tokenizer_corpus
    from mmrft.models.tiny import make_tiny_model

    out = make_tiny_model(args.out, arch=args.arch, size=args.size, corpus=tokenizer_corpus(), seed=args.seed,
                          overwrite=args.overwrite)
    import json

    arch = json.loads((out / "mmrft_tiny.json").read_text())["arch"]
    print(f"wrote {arch} ({args.size}) to {out}")
    return 0


def _cmd_plan(args) -> int:
    import json

    from mmrft.plan import format_plan, parse_bytes, plan_from_config

    plan = plan_from_config(_load_cfg(args), gpus=args.gpus,
                            gpu_memory=parse_bytes(args.gpu_memory) if args.gpu_memory else None,
                            overhead=parse_bytes(args.overhead), prompt_tokens=args.prompt_tokens)
    print(json.dumps(plan.to_dict(), indent=2) if args.json else format_plan(plan))
    return 0 if plan.fits is not False else 1


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

    if args.resume:  # `--resume RUN_DIR|auto` is `trainer.resume=...` (+ the run's directory as output_dir)
        args.overrides = [*args.overrides, f"trainer.resume={args.resume}"]
        if args.resume != "auto":
            args.overrides.append(f"trainer.output_dir={args.resume}")
    res = train_rl(_load_cfg(args))
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, rank 0 reports
        return 0
    res["plot"] = str(plot_reward_accuracy(res["run_dir"]))
    if res["stopped_at"] is not None:
        print(f"stopped at step {res['stopped_at']}; continue with: mmrft train {args.config} --resume {res['run_dir']}")
        return 0
    if res["eval_before"] and res["eval_after"]:
        from mmrft.report.table import comparison_table

        print(comparison_table(res["eval_before"], res["eval_after"], "before RL", "after RL"))
    print(f"checkpoint: {res['checkpoint']}\nplot: {res['plot']}")
    return 0


def _cmd_demo(args) -> int:
    from mmrft.demo import run_demo

    out = args.out or ("runs/demo" if args.modality == "image" else f"runs/demo-{args.modality}")
    run_demo(out, quick=args.quick, overrides=args.overrides, modality=args.modality, seed=args.seed)
    return 0


def _parse_options(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--option {item!r}: expected key=value, e.g. box_format=norm1000")
        out[key] = yaml.safe_load(value)
    return out


def _cmd_eval(args) -> int:
    from mmrft.config import Config, eval_budget, import_plugins, load_config
    from mmrft.eval.harness import evaluate_benchmark, multi_turn_setup
    from mmrft.eval.results import by_field_markdown, summary_line
    from mmrft.run_lock import RunLock

    # --config: evaluate as that run's evaluations do (its dtype, prompt format, system prompt, eval budget); the
    # flags given here win. Without it, the defaults of a config.
    overrides = ["rollout.tools=[" + ", ".join(f"'{t}'" for t in args.tools) + "]"] if args.tools else []
    if args.max_turns:
        overrides.append(f"rollout.max_turns={args.max_turns}")
    cfg = load_config(args.config, overrides) if args.config or overrides else Config()
    import_plugins(Config(imports=[*cfg.imports, *args.imports]))  # user adapters register themselves on import
    max_new_tokens, batch_size = eval_budget(cfg)
    # --out: one writer per results directory for the whole evaluation (mmrft.run_lock)
    with RunLock(args.out, "eval") if args.out else contextlib.nullcontext():
        summary = evaluate_benchmark(
            args.model, args.benchmark, args.data, split=args.split, limit=args.limit, samples=args.samples,
            temperature=args.temperature, max_new_tokens=args.max_new_tokens or max_new_tokens,
            batch_size=args.batch_size or batch_size, prompt_format=args.format or cfg.data.prompt_format,
            system_prompt=cfg.data.system_prompt, options=_parse_options(args.option), out_dir=args.out,
            overwrite=args.overwrite, progress=not args.no_progress, dtype=args.dtype or cfg.model.dtype,
            tools=multi_turn_setup(cfg.rollout), max_pixels=args.max_pixels or cfg.data.max_pixels, by=args.by,
        )
    print(summary_line(summary))
    if args.by:
        print(by_field_markdown(summary).lstrip("\n"))
    if args.out:
        print(f"results: {args.out}/results.json, table: {args.out}/results.md")
    return 0


def _cmd_eval_compare(args) -> int:
    from mmrft.eval.results import compare

    table, _ = compare(args.run_a, args.run_b, n_resamples=args.resamples, confidence=args.confidence)
    print(table, end="")
    return 0


def _cmd_report(args) -> int:
    from mmrft.report.summary import write_report

    png, md = write_report(args.runs, args.out)
    print(f"plots: {png}\nsummary: {md}")
    return 0


def _cmd_view(args) -> int:
    from mmrft.report.viewer import write_viewer

    print(f"viewer: {write_viewer(args.run, args.out)}")
    return 0


def _report_parsers(sub) -> None:
    s = sub.add_parser("report", help="PNG curves and a Markdown summary of one run, or several overlaid",
                       description="Write report.png (reward, accuracy, length, KL, entropy, clip fraction by step) "
                       "and report.md; with several runs the curves are overlaid.")
    s.add_argument("runs", nargs="+", help="run directories")
    s.add_argument("--out", help="output directory (default: the first run)")
    s.set_defaults(fn=_cmd_report)
    s = sub.add_parser("view", help="a self-contained HTML page of a run's rollout dumps",
                       description="Browse the prompts, images and completions dumped every tracking.rollouts_every "
                       "steps: RUN/viewer.html, no network needed to open it.")
    s.add_argument("run", help="run directory")
    s.add_argument("--out", help="HTML file (default RUN/viewer.html)")
    s.set_defaults(fn=_cmd_view)


def _eval_parsers(sub) -> None:
    from mmrft.models.load import DTYPES

    s = sub.add_parser("eval", help="evaluate a model on a benchmark with its official scoring",
                       description="Run a model on a benchmark read from its released files; write results.json "
                       "and results.md to --out. `mmrft eval compare RUN_A RUN_B` compares two runs (or two "
                       "held-out evaluations of a training run, RUN/eval/held_out/step_<N>.jsonl).")
    s.add_argument("--model", required=True, help="local model directory")
    s.add_argument("--benchmark", required=True, help="adapter name (mathvista, mmmu, chartqa, synthetic, ...)")
    s.add_argument("--data", required=True, help="directory holding the benchmark's released files")
    s.add_argument("--split", help="split (default: the benchmark's usual evaluation split)")
    s.add_argument("--limit", type=int, help="only the first N samples")
    s.add_argument("--samples", type=int, default=1, help="completions per question: >1 gives pass@k and majority vote")
    s.add_argument("--temperature", type=float, help="sampling temperature (default: greedy for 1 sample, else 1.0)")
    s.add_argument("--config", help="a run's YAML config: evaluate with its model.dtype, data.prompt_format, "
                   "data.system_prompt and evaluation budget (eval.max_new_tokens, else rollout.max_new_tokens; "
                   "eval.batch_size), as evaluation during that training run does; the flags below win")
    s.add_argument("--dtype", choices=list(DTYPES),
                   help="weights' dtype (default: the config's model.dtype, float32)")
    s.add_argument("--max-new-tokens", type=int,
                   help="generation budget (default: the config's eval.max_new_tokens, else rollout.max_new_tokens: "
                   "32 without --config; reasoning models need hundreds)")
    s.add_argument("--batch-size", type=int, help="questions per generation batch (default: the config's "
                   "eval.batch_size, 64)")
    s.add_argument("--format", choices=["r1", "plain"],
                   help="r1 appends the <think>/<answer> instruction to the benchmark's prompt; plain does not "
                   "(default: the config's data.prompt_format, r1)")
    s.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="adapter option, e.g. box_format=norm1000 for refcoco (repeatable)")
    s.add_argument("--tools", nargs="+", metavar="TOOL",
                   help="answer in the multi-turn loop with these tools (e.g. zoom_in, or my_pkg.tools:fn); the "
                   "limits are the config's rollout.max_turns, max_tool_calls, max_images, max_total_tokens "
                   "(default: a --config run's rollout.tools)")
    s.add_argument("--max-turns", type=int, help="with tools: assistant turns per answer (rollout.max_turns)")
    s.add_argument("--max-pixels", type=int, help="show the question's images downsized to at most this many pixels "
                   "(w*h; data.max_pixels); zoom_in still crops the original")
    s.add_argument("--by", action="append", default=[], metavar="FIELD",
                   help="break the accuracy down by a sample field: task, a benchmark category, or a metadata field "
                   "such as difficulty or domain (per value: n and accuracy; samples without it under (none)); "
                   "repeatable")
    s.add_argument("--out", help="run directory: results + a per-sample cache that resumes an interrupted run")
    s.add_argument("--overwrite", action="store_true", help="discard cached predictions in --out")
    s.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import a module that registers your own benchmark adapter (repeatable)")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(fn=_cmd_eval)

    c = sub.add_parser("eval-compare", help=argparse.SUPPRESS)
    c.add_argument("run_a", help="an `mmrft eval` run (--out), or a held-out records file step_<N>.jsonl")
    c.add_argument("run_b")
    c.add_argument("--resamples", type=int, default=10000, help="bootstrap resamples")
    c.add_argument("--confidence", type=float, default=0.95)
    c.set_defaults(fn=_cmd_eval_compare)


def build_parser() -> argparse.ArgumentParser:
    from mmrft.models.sizes import REAL_SIZES
    from mmrft.models.tiny import ARCHS

    p = argparse.ArgumentParser(prog="mmrft", description="Reinforcement fine-tuning of multimodal LLMs.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("make-tiny-model", help="build a tiny random VLM with a locally trained tokenizer",
                       description="Write a tiny, randomly initialised model of a real architecture to OUT.")
    s.add_argument("out", help="output directory")
    s.add_argument("--arch", default=None, choices=list(ARCHS),
                   help="a transformers model_type (default: qwen2_vl, or the --size checkpoint's own family)")
    s.add_argument("--size", default="tiny", choices=["tiny", "small", *REAL_SIZES],
                   help="tiny ~2.4M params, small ~30M (fp32); qwen2.5-vl-3b / qwen2.5-vl-7b: the published "
                   "checkpoint's layer counts and widths with the tiny tokenizer, random bf16 weights (3.4 G / 7.6 G "
                   "parameters; see mmrft/models/sizes.py)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    s.set_defaults(fn=_cmd_make_tiny_model)

    s = sub.add_parser("synth", help="generate a procedural visual task with known answers",
                       description="Write DIR/data.jsonl and DIR/images/ for one (or several, mixed) synthetic tasks.")
    s.add_argument("task", nargs="+", help="task name(s), e.g. count, arithmetic, compare, ground, multi_image_more, "
                   "multi_image_change, video_direction, video_bounce_count, video_temporal_ground, "
                   "audio_count_beeps, audio_higher_tone, audio_pause_length, zoom")
    s.add_argument("--n", type=int, required=True, help="number of samples")
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--difficulty", type=int, default=0, help="0 = easiest")
    s.add_argument("--image-size", type=int, default=None,
                   help="canvas size in pixels (default: the task's own, 112 for most, 448 for zoom)")
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
        if name == "train":
            s.add_argument("--resume", metavar="RUN_DIR|auto",
                           help="continue a run from its newest valid checkpoint (auto: trainer.output_dir, if any)")
        s.set_defaults(fn=fn)

    s = sub.add_parser("plan", help="the memory each rank needs for a config, before launching it",
                       description="Weights, gradients, optimizer states, activations, logits, the rollout KV cache "
                       "and vLLM's share per rank for CONFIG (reads model.path's config.json; loads no weights), the "
                       "peak and whether it fits --gpu-memory, with the biggest term named. Formulas: mmrft/plan.py. "
                       "Exit code 1 when it does not fit.")
    s.add_argument("config", help="YAML config file")
    s.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    s.add_argument("--gpus", type=int, default=1, help="ranks (processes, one GPU each); FSDP shards over them "
                   "when trainer.fsdp=true")
    s.add_argument("--gpu-memory", help="memory per GPU, e.g. 80GB (10^9 bytes) or 80GiB; omitted: no verdict")
    s.add_argument("--overhead", default="0", help="add this to the peak: the runtime outside the tensors counted "
                   "(CUDA context and allocator slack, ~1GiB on a GPU; the Python/torch process on a CPU)")
    s.add_argument("--prompt-tokens", type=int, help="prompt length in tokens (default: 64 text tokens + one image "
                   "at data.max_pixels, else the processor's max_pixels)")
    s.add_argument("--json", action="store_true", help="print the plan as JSON")
    s.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    s.set_defaults(fn=_cmd_plan)

    s = sub.add_parser("demo", help="tiny model + synthetic counting: SFT, then GRPO, held-out table",
                       description="Build the tiny model, generate data, run SFT then GRPO, and print held-out "
                       "accuracy of the SFT model vs the SFT+GRPO model.")
    s.add_argument("--out", default=None, help="directory for the model, data and runs (default runs/demo, or "
                   "runs/demo-MODALITY)")
    s.add_argument("--modality", default="image", choices=["image", "multi-image", "video", "audio", "tools"],
                   help="image: counting (Qwen2-VL); multi-image: which picture has more; video: direction of "
                   "motion; audio: counting beeps (Qwen2-Audio); tools: a detail too small to see unless the "
                   "model zooms in on the card the question names, with and without the zoom_in tool")
    s.add_argument("--quick", action="store_true", help="a few steps only (a smoke test of the whole path)")
    s.add_argument("--seed", type=int, default=0, help="the tiny model's initial weights and the training seeds "
                   "(the data is the same for every seed)")
    s.add_argument("overrides", nargs="*", help="overrides for the RL config, e.g. trainer.steps=100")
    s.set_defaults(fn=_cmd_demo)
    _eval_parsers(sub)
    _report_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["eval", "compare"]:  # `mmrft eval compare A B`
        argv = ["eval-compare", *argv[2:]]
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
