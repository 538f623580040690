"""Training state per process, data-parallel (replicated) vs FSDP2, under torchrun with gloo on CPU.

    python benchmarks/fsdp_memory.py [--size tiny|small] [--procs 2] [--steps 3] [--out PATH]

Runs `mmrft train` (Dr. GRPO, no KL, AdamW) with `--procs` processes twice on the same model, data and seed: once
with `trainer.fsdp=false` (every rank holds all weights, gradients and optimizer moments) and once with
`trainer.fsdp=true`. After every update each rank adds up the bytes it holds for the policy's parameters,
gradients and optimizer state (the local shard of a sharded tensor), and at the end its peak RSS. These are what
FSDP2 divides: the state bytes are exact; peak RSS also holds what is not sharded (activations, the full weights
gathered for sampling, the Python and torch runtime, the reward worker's separate process excluded) and is measured
once per run. Same model and data as `rl_step.py` (built under benchmarks/results/rl_step/<size>/ when missing).
Writes benchmarks/results/fsdp_memory/fsdp_memory_<size>.json (or --out) atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rl_step import RESULTS as RL_RESULTS, prepare, rusage_mb, write_json  # noqa: E402

RESULTS = Path("benchmarks/results/fsdp_memory")
MODES = {"replicated": "false", "fsdp2": "true"}


def local_bytes(tensors) -> int:
    """Bytes of these tensors held by this process (a DTensor's local shard)."""
    total = 0
    for t in tensors:
        if t is None:
            continue
        t = t.to_local() if hasattr(t, "to_local") else t
        total += t.numel() * t.element_size()
    return total


def training_state(learner) -> dict[str, int]:
    from mmrft.train.update import stepped_parameters

    params = stepped_parameters(learner.optimizer)
    states = [v for p in params for v in learner.optimizer.state.get(p, {}).values() if hasattr(v, "numel")]
    return {"parameters": local_bytes(params), "gradients": local_bytes(p.grad for p in params),
            "optimizer": local_bytes(states),
            "all_parameters": local_bytes(learner.model.parameters())}


def child(spec_path: str) -> int:
    """One rank of one run (started by torchrun)."""
    spec = json.loads(Path(spec_path).read_text())
    import mmrft.train.rl as rl
    import mmrft.train.run as run
    from mmrft.config import load_config

    rank = int(os.environ.get("RANK", "0"))
    seen: list[dict[str, int]] = []
    real = run.update_weights

    def recording_update(cfg, learner, *args, **kwargs):
        out = real(cfg, learner, *args, **kwargs)
        seen.append(training_state(learner))  # after the step: gradients and moments are all present
        return out

    run.update_weights = recording_update
    p, g = spec["prompts"], spec["group"]
    cfg = load_config(None, [
        "algorithm.name=dr_grpo", "algorithm.kl_coef=0.0", f"algorithm.micro_batch_size={p * g}",
        f"model.path={spec['model']}", f"data.train={spec['data']}",
        f"rollout.group_size={g}", f"rollout.prompts_per_step={p}", f"rollout.max_new_tokens={spec['max_new_tokens']}",
        f"trainer.output_dir={spec['run_dir']}", "trainer.overwrite=true", f"trainer.steps={spec['steps']}",
        "trainer.lr=1e-4", f"trainer.seed={spec['seed']}", "trainer.eval_every=0", "trainer.checkpoint_every=0",
        "trainer.progress=false", "tracking.tensorboard=false", f"trainer.fsdp={spec['fsdp']}",
    ])
    rl.train_rl(cfg)
    write_json(Path(spec["out_dir"]) / f"rank{rank}.json", {"steps": seen, "peak_rss_mb": rusage_mb()["self"]})
    return 0


def run(mode: str, spec: dict, workdir: Path, procs: int) -> dict:
    run_dir = workdir / mode
    out_dir = run_dir / "ranks"
    spec = {**spec, "fsdp": MODES[mode], "run_dir": str(run_dir / "run"), "out_dir": str(out_dir)}
    spec_path = write_json(run_dir / "spec.json", spec)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // procs))}
    done = subprocess.run([str(torchrun), "--nproc_per_node", str(procs), "--master_port", str(port), __file__,
                           "--child", str(spec_path)], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{mode} run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    ranks = [json.loads((out_dir / f"rank{r}.json").read_text()) for r in range(procs)]
    last = [r["steps"][-1] for r in ranks]
    keys = ("parameters", "gradients", "optimizer")
    return {
        "per_rank_state_mb": [{k: r[k] / 2**20 for k in (*keys, "all_parameters")} for r in last],
        "state_mb_max_rank": max(sum(r[k] for k in keys) for r in last) / 2**20,
        "peak_rss_mb": [r["peak_rss_mb"] for r in ranks],
        "peak_rss_mb_max_rank": max(r["peak_rss_mb"] for r in ranks),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=("tiny", "small"), default="tiny")
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=4, help="prompts per step (a multiple of --procs)")
    ap.add_argument("--group", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args.child)
    workdir = RL_RESULTS / args.size
    model_dir, data_dir, model_info = prepare(args.size, 64, workdir)
    spec = {"model": str(model_dir), "data": str(data_dir / "data.jsonl"), "prompts": args.prompts,
            "group": args.group, "max_new_tokens": args.max_new_tokens, "steps": args.steps, "seed": 0}
    results = {mode: run(mode, spec, RESULTS / args.size, args.procs) for mode in MODES}
    rep, sh = results["replicated"], results["fsdp2"]
    out = {
        "benchmark": "fsdp_memory", "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "host": platform.node(),
        "cpus": os.cpu_count(), "procs": args.procs, "model": model_info, "settings": spec, "results": results,
        "state_ratio_fsdp_over_replicated": sh["state_mb_max_rank"] / rep["state_mb_max_rank"],
    }
    path = write_json(args.out or RESULTS / f"fsdp_memory_{args.size}.json", out)
    print(f"{args.size} ({model_info['parameters'] / 1e6:.1f} M parameters), {args.procs} processes, per rank (largest):")
    for mode, r in results.items():
        print(f"  {mode:10s}  parameters + gradients + AdamW state {r['state_mb_max_rank']:8.1f} MiB   "
              f"peak RSS {r['peak_rss_mb_max_rank']:8.1f} MiB")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
