"""`mmrft plan`'s per-rank prediction next to the peak RSS of real RL steps on this CPU.

    python benchmarks/plan_check.py [--cases tiny small small-lora qwen2.5-vl-3b] [--allocator glibc|live]
                                    [--reuse PREVIOUS.json] [--out PATH]

For each case: builds (or reuses, under benchmarks/results/plan_check/<size>/) the model with `make_tiny_model`
(`qwen2.5-vl-3b`: the published Qwen2.5-VL-3B shapes, bf16, 3.44 G parameters, 6.9 GB), runs its RL steps in a
fresh process (`mmrft.train.rl.train_rl`, one rank, CPU, GRPO without KL, rewards from a hash of the completion text
so that every group has a reward spread), and records that process's peak RSS (`ru_maxrss`), the RSS once the
policy is loaded, each step's time, loss, and (LoRA) whether the adapter moved. The end-of-run save is skipped (it
deep-copies the model to merge the adapter; the plan lists it as its own phase). `mmrft plan` is then asked about the
same config with the process's runtime baseline as `--overhead` (the peak RSS of a process that imports torch,
transformers and mmrft's trainer and loads nothing, measured here) and the measured prompt length as
`--prompt-tokens`; the relative error is (predicted - measured) / measured. Writes
benchmarks/results/plan_check/plan_check.json (or --out) and prints a Markdown table.

`--allocator`: `glibc` (default) runs the children with glibc's malloc as it comes, the RSS a user's process
shows; `live` sets MALLOC_MMAP_THRESHOLD_=131072 in the children, which pins glibc's mmap threshold (otherwise it
rises to the size of the last freed mmapped block, up to 32 MiB) so that every allocation over 128 KiB - every
tensor that matters - is its own mapping, returned to the system when freed: the RSS then tracks the live tensors
and the difference between the two is memory glibc keeps in its heap after torch freed it (see docs/scaling.md).
`--reuse PREVIOUS.json`: cases whose overrides match a result there keep its measurement (and its baseline) and
only the plan is recomputed - to re-check a changed plan without re-running the steps.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path("benchmarks/results/plan_check")
# name -> (model size, overrides). Full fine-tuning in fp32 at toy sizes; LoRA + bf16 + checkpointing + frozen tower
# at the small size and at the 3B shape (the 3B one-step settings of tests/models/test_3b_step.py).
LORA = ["model.dtype=bfloat16", "model.lora.enabled=true", "model.lora.r=8", "model.lora.alpha=16",
        "model.gradient_checkpointing=true", "model.freeze_vision=true"]
CASES: dict[str, tuple[str, list[str], int]] = {
    "tiny": ("tiny", ["rollout.prompts_per_step=8", "rollout.group_size=8", "rollout.max_new_tokens=32",
                      "algorithm.micro_batch_size=64"], 2),
    "small": ("small", ["rollout.prompts_per_step=8", "rollout.group_size=8", "rollout.max_new_tokens=32",
                        "algorithm.micro_batch_size=64"], 2),
    "small-lora": ("small", [*LORA, "rollout.prompts_per_step=8", "rollout.group_size=8",
                             "rollout.max_new_tokens=32", "algorithm.micro_batch_size=64"], 2),
    "qwen2.5-vl-3b": ("qwen2.5-vl-3b", [*LORA, "rollout.prompts_per_step=1", "rollout.group_size=2",
                                        "rollout.max_new_tokens=8", "algorithm.micro_batch_size=2"], 1),
}
COMMON = ["algorithm.name=grpo", "algorithm.kl_coef=0.0", "rewards.weights={'plan_check:text_hash': 1.0}",
          "rewards.workers=0", "trainer.lr=1e-3", "trainer.eval_every=0", "trainer.checkpoint_every=0",
          "trainer.progress=false", "tracking.tensorboard=false", "tracking.rollouts_every=0", "trainer.overwrite=true"]


def text_hash(completion: str, sample: dict) -> float:
    """A reward that differs between any two different texts (so advantages are not all zero)."""
    return zlib.crc32(completion.encode()) / 2**32


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def prepare(size: str, root: Path = RESULTS) -> tuple[Path, Path]:
    """The model (built once per size, seed 0) and 16 counting scenes."""
    from mmrft.data.synthetic import tokenizer_corpus, write_dataset
    from mmrft.models.tiny import make_tiny_model

    model = root / size / "model"
    meta = model / "mmrft_tiny.json"
    if not (meta.is_file() and json.loads(meta.read_text()).get("size") == size):
        print(f"building the {size} model in {model}", flush=True)
        make_tiny_model(model, size=size, corpus=tokenizer_corpus(), seed=0, overwrite=True)
    data = root / "data"
    if not (data / "data.jsonl").is_file():
        write_dataset("count", 16, data, seed=2)
    return model, data


def config_overrides(model: Path, data: Path, run_dir: Path, case_overrides: list[str], steps: int) -> list[str]:
    return [f"model.path={model}", f"data.train={data}", f"trainer.output_dir={run_dir}", f"trainer.steps={steps}",
            *COMMON, *case_overrides]


# ----------------------------------------------------------------------------------------------- children


def child(spec_path: str, result_path: str) -> int:
    """One run: its steps, peak RSS, RSS after loading, step times, losses, and whether LoRA weights moved."""
    spec = json.loads(Path(spec_path).read_text())
    if spec.get("baseline"):
        import torch  # noqa: F401
        import transformers  # noqa: F401

        import mmrft.train.rl  # noqa: F401
        import mmrft.train.run  # noqa: F401
        Path(result_path).write_text(json.dumps({"peak_rss_bytes": peak_rss_bytes()}))
        return 0
    import torch

    import mmrft.train.rl as rl
    import mmrft.train.run as run
    from mmrft.config import load_config
    from mmrft.data.collate import encode_prompts
    from mmrft.data.sources import load_samples
    from mmrft.models.load import load_processor
    from mmrft.track.metrics import read_metrics

    cfg = load_config(None, spec["overrides"])
    samples = load_samples(cfg.data.train, check_images=False)[:1]
    prompt_tokens = int(encode_prompts(load_processor(cfg.model.path), samples).inputs["input_ids"].shape[1])
    out: dict = {"prompt_tokens": prompt_tokens}
    real_load, real_save = run.load_policy, run.save_model

    def load_policy(*a, **k):
        t0 = time.perf_counter()
        model, processor = real_load(*a, **k)
        out.update(load_s=time.perf_counter() - t0, rss_after_load_bytes=current_rss_bytes(),
                   peak_rss_at_load_bytes=peak_rss_bytes())
        out["lora_before"] = {n: p.detach().float().clone() for n, p in model.named_parameters() if "lora_" in n}
        return model, processor

    def save_model(model, processor, path):  # the merged end-of-run copy is its own phase in the plan: skipped
        after = {n: p.detach().float() for n, p in model.named_parameters() if "lora_" in n}
        before = out.pop("lora_before")
        out["lora_tensors"] = len(after)
        out["lora_changed"] = sum(int(not torch.equal(before[n], after[n])) for n in after)
        out["peak_rss_before_save_bytes"] = peak_rss_bytes()
        return Path(path)

    run.load_policy, run.save_model = load_policy, save_model
    t0 = time.perf_counter()
    rl.train_rl(cfg)
    out["run_s"] = time.perf_counter() - t0
    rows = [r for r in read_metrics(cfg.trainer.output_dir) if r.get("phase") == "train"]
    out["steps"] = [{"step": r["step"], "step_s": r.get("time/step"), "rollout_s": r.get("time/rollout"),
                     "update_s": r.get("time/update"),
                     "loss": next((r[k] for k in ("loss", "loss/policy", "actor/loss") if k in r), None),
                     "metrics": {k: v for k, v in r.items() if "loss" in k or k.startswith("grad")}} for r in rows]
    out["peak_rss_bytes"] = peak_rss_bytes()
    out.pop("lora_before", None)
    Path(result_path).write_text(json.dumps(out, indent=2))
    return 0


ALLOCATORS = {"glibc": {}, "live": {"MALLOC_MMAP_THRESHOLD_": "131072"}}


def run_child(spec: dict, workdir: Path, tag: str) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    spec_path, result_path, log_path = (workdir / f"{tag}.spec.json", workdir / f"{tag}.result.json",
                                        workdir / f"{tag}.log")
    result_path.unlink(missing_ok=True)
    spec_path.write_text(json.dumps(spec))
    threads = str(spec.get("threads", 2))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "CUDA_VISIBLE_DEVICES": "",
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **ALLOCATORS[spec.get("allocator", "glibc")],
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        code = subprocess.call([sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path),
                                str(result_path)], stdout=log, stderr=subprocess.STDOUT, env=env)
    if code != 0 or not result_path.is_file():
        raise RuntimeError(f"{tag} failed (exit {code}); log {log_path}:\n{log_path.read_text()[-3000:]}")
    res = json.loads(result_path.read_text())
    res["wall_s"] = time.perf_counter() - t0
    return res


def run_case(name: str, baseline: int, root: Path = RESULTS, threads: int = 2, allocator: str = "glibc",
             reuse: dict | None = None) -> dict:
    """Measure one case (or take `reuse`'s measurement of it) and put `mmrft plan`'s prediction beside it."""
    from mmrft.config import load_config
    from mmrft.plan import plan_from_config

    size, overrides, steps = CASES[name]
    model, data = prepare(size, root)
    overrides = config_overrides(model.resolve(), data.resolve(), (root / "runs" / name).resolve(), overrides, steps)
    if reuse is not None:
        if reuse["overrides"] != overrides:
            raise SystemExit(f"--reuse: case {name} was measured with other overrides")
        measured = reuse["measured"]
    else:
        measured = run_child({"overrides": overrides, "threads": threads, "allocator": allocator}, root / "runs", name)
    plan = plan_from_config(load_config(None, overrides), overhead=baseline, prompt_tokens=measured["prompt_tokens"])
    predicted = plan.step_peak_bytes
    peak = measured.get("peak_rss_before_save_bytes") or measured["peak_rss_bytes"]
    return {"case": name, "size": size, "overrides": overrides, "steps": steps, "measured": measured,
            "plan": plan.to_dict(), "predicted_bytes": predicted, "measured_peak_bytes": peak,
            "relative_error": (predicted - peak) / peak, "reused": reuse is not None}


def table(results: list[dict], baseline: int) -> str:
    mib = 2**20
    rows = ["| case | parameters | measured peak RSS | plan (steps) | error | biggest term | s/step |",
            "|---|---:|---:|---:|---:|---|---:|"]
    for r in results:
        sh = r["plan"]["settings"]["shape"]
        st = [s["step_s"] for s in r["measured"]["steps"] if s["step_s"]]
        rows.append(f"| {r['case']} | {sh['params'] / 1e6:,.1f} M | {r['measured_peak_bytes'] / mib:,.0f} MiB | "
                    f"{r['predicted_bytes'] / mib:,.0f} MiB | {100 * r['relative_error']:+.1f}% | "
                    f"{r['plan']['biggest']} | {max(st) if st else float('nan'):.1f} |")
    if any(r.get("reused") for r in results):
        rows.append("\n(measurements reused from --reuse; the plan recomputed)")
    rows.append(f"\nruntime baseline (import-only process, the plan's --overhead): {baseline / mib:,.0f} MiB")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--allocator", choices=list(ALLOCATORS), default="glibc",
                    help="glibc: malloc as it comes; live: a fixed 128 KiB mmap threshold, RSS = live tensors")
    ap.add_argument("--reuse", metavar="PREVIOUS_JSON",
                    help="take the measurements (and baseline) of matching cases from a previous result file")
    ap.add_argument("--out", default=None, help="default: benchmarks/results/plan_check/plan_check.json "
                    "(plan_check_live.json with --allocator live)")
    ap.add_argument("--child", nargs=2, metavar=("SPEC", "RESULT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(*args.child)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    out = Path(args.out or RESULTS / ("plan_check.json" if args.allocator == "glibc" else "plan_check_live.json"))
    previous = json.loads(Path(args.reuse).read_text()) if args.reuse else None
    if previous is not None and previous.get("allocator", "glibc") != args.allocator:
        raise SystemExit(f"--reuse {args.reuse}: measured with --allocator {previous.get('allocator', 'glibc')}, "
                         f"not {args.allocator}")
    old = {r["case"]: r for r in (previous or {}).get("results", [])}
    reused = {name: old[name] for name in args.cases if name in old}
    if previous is not None and len(reused) == len(args.cases):
        baseline = previous["baseline_rss_bytes"]
    else:
        if reused:
            raise SystemExit("--reuse: mixing reused and new measurements would mix baselines; reuse all or none")
        baseline = run_child({"baseline": True, "allocator": args.allocator}, RESULTS / "runs",
                             "baseline")["peak_rss_bytes"]
    results = []
    for name in args.cases:
        print(f"{name} ...", flush=True)
        results.append(run_case(name, baseline, threads=args.threads, allocator=args.allocator,
                                reuse=reused.get(name)))
        print(table(results[-1:], baseline).splitlines()[2], flush=True)
    import torch
    import transformers

    res = {"benchmark": "plan_check", "command": " ".join([sys.executable, *sys.argv]), "started": started,
           "allocator": args.allocator, "allocator_env": ALLOCATORS[args.allocator],
           "reused_from": (previous.get("reused_from") or {"started": previous.get("started"),
                                                            "command": previous.get("command")})
           if previous is not None else None,  # the run that measured (carried through repeated --reuse)
           "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), "baseline_rss_bytes": baseline,
           "versions": {"python": platform.python_version(), "torch": torch.__version__,
                        "transformers": transformers.__version__},
           "machine": {"cpus": len(os.sched_getaffinity(0)), "load_avg_end": os.getloadavg()}, "results": results}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(res, indent=2))
    os.replace(tmp, out)
    print(table(results, baseline))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
