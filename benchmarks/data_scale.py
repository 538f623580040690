"""Data at scale: time to the first RL step and peak host memory at 10 K, 100 K and 1 M rows.

    python benchmarks/data_scale.py [--sizes 10000,100000,1000000] [--modes lazy-cold,lazy-warm,eager]
                                    [--work DIR] [--out benchmarks/results/data_scale.json]

Writes a jsonl dataset of each size whose rows are the synthetic `count` task's scenes (16 scenes, 112 px, their
images shared by every row; row ids unique), builds the tiny Qwen2-VL once, and then, for each size and mode, runs a
fresh Python process that trains one GRPO step (`mmrft.train.rl.train_rl`, 8 prompts x 4 completions, 16 new
tokens, 1 thread) and reports:

* `first_step_s`: wall time from the child's first line (before its imports) to the end of step 1 (the step's
  metrics logged): imports, loading and checking the data, loading the model, sampling, scoring, the update;
* `load_s`: the part of it spent in `mmrft.train.data.load_data`;
* `peak_rss_mb`: the child's peak resident set (`getrusage` ru_maxrss), everything included.

Modes: `lazy-cold` (`data.lazy=true` with an empty data cache: the jsonl is converted to Arrow and every row checked),
`lazy-warm` (the same again: the converted file and the check's outcome are reused), `eager` (`data.lazy=false`: a
list of samples, every image opened, as before lazy loading existed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

T_START = time.perf_counter()

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "data_scale.json"
BASE_SCENES = 16


def make_data(work: Path, n: int) -> Path:
    """`work/rows-<n>/data.jsonl`: `n` rows cycling through BASE_SCENES count scenes (images under work/base)."""
    from mmrft.data.synthetic import write_dataset

    base = work / "base"
    if not (base / "data.jsonl").is_file():
        write_dataset("count", BASE_SCENES, base, seed=0, image_size=112)
    rows = [json.loads(line) for line in (base / "data.jsonl").read_text().splitlines() if line.strip()]
    for r in rows:
        r["images"] = [os.path.join("..", "base", p) for p in r["images"]]
    out = work / f"rows-{n}" / "data.jsonl"
    if out.is_file() and sum(1 for _ in out.open()) == n:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with tmp.open("w") as f:
        for i in range(n):
            r = rows[i % len(rows)]
            f.write(json.dumps({**r, "id": f"{r['id']}-{i:07d}"}) + "\n")
    tmp.replace(out)
    return out


def make_model(work: Path) -> Path:
    from mmrft.data.synthetic import tokenizer_corpus
    from mmrft.models.tiny import make_tiny_model

    model = work / "model"
    if not (model / "config.json").is_file():
        make_tiny_model(model, arch="qwen2_vl", size="tiny", corpus=tokenizer_corpus(), seed=0, overwrite=True)
    return model


def child(spec_path: str, result_path: str) -> None:
    """One fresh process: one GRPO step on the spec's data; writes the timings and peak RSS."""
    import resource

    spec = json.loads(Path(spec_path).read_text())
    os.environ["HF_HUB_OFFLINE"] = "1"
    import mmrft.train.data as train_data
    import mmrft.train.rl as rl
    import mmrft.train.run as run
    from mmrft.config import load_config

    stamps: dict[str, float] = {}
    real_load = run.load_data

    def timed_load(cfg):
        t = time.perf_counter()
        out = real_load(cfg)
        stamps["load_s"] = time.perf_counter() - t
        stamps["n_train"] = len(out[0])
        stamps["lazy"] = isinstance(out[0], train_data.SampleTable)
        return out

    class StampedTracker(run.Tracker):
        def log(self, step, metrics, phase="train"):
            if phase == "train" and step == 1 and "first_step_s" not in stamps:
                stamps["first_step_s"] = time.perf_counter() - T_START
                stamps["peak_rss_mb_at_step"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            super().log(step, metrics, phase)

    run.load_data = timed_load
    run.Tracker = StampedTracker
    cfg = load_config(None, [
        f"model.path={spec['model']}", "model.dtype=float32",
        f"data.train={spec['data']}", f"data.lazy={spec['lazy']}", f"data.cache_dir={spec['cache']}",
        "rollout.group_size=4", "rollout.prompts_per_step=8", "rollout.max_new_tokens=16",
        f"trainer.output_dir={spec['run_dir']}", "trainer.overwrite=true", "trainer.steps=1", "trainer.threads=1",
        "trainer.eval_every=0", "trainer.checkpoint_every=0", "trainer.progress=false", "trainer.seed=0",
        "tracking.tensorboard=false", "tracking.rollouts_every=0",
    ])
    rl.train_rl(cfg)
    stamps["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(result_path).write_text(json.dumps(stamps))


def run_child(spec: dict, work: Path) -> dict:
    spec_path, result_path = work / "spec.json", work / "result.json"
    spec_path.write_text(json.dumps(spec))
    result_path.unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--child", str(spec_path), str(result_path)], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    out = json.loads(result_path.read_text())
    out["wall_s"] = time.perf_counter() - t
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--modes", default="lazy-cold,lazy-warm,eager")
    ap.add_argument("--work", default=str(HERE / "results" / "data_scale_work"),
                    help="datasets, model, cache and run directories (reused)")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model = make_model(work)
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = args.modes.split(",")
    results = []
    for n in sizes:
        data = make_data(work, n)
        cache = work / f"cache-{n}"
        for mode in modes:
            if mode == "lazy-cold":
                shutil.rmtree(cache, ignore_errors=True)
            spec = {"model": str(model), "data": str(data), "lazy": mode != "eager", "cache": str(cache),
                    "run_dir": str(work / "runs" / f"{n}-{mode}")}
            r = run_child(spec, work)
            results.append({"rows": n, "mode": mode, **r})
            print(f"{n:>9,} rows  {mode:<10} first step {r['first_step_s']:6.1f} s  (load {r['load_s']:5.1f} s)  "
                  f"peak RSS {r['peak_rss_mb']:7.0f} MiB", flush=True)
    meta = {"command": " ".join(["python benchmarks/data_scale.py", *sys.argv[1:]]), "python": sys.version.split()[0],
            "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print()
    print(table(results, sizes, modes))
    print(f"\nwrote {args.out}")


def table(results: list[dict], sizes: list[int], modes: list[str]) -> str:
    """Markdown: one row per size, per mode `first step s / peak RSS MiB`."""
    by = {(r["rows"], r["mode"]): r for r in results}
    lines = ["| rows | " + " | ".join(f"{m}: first step / peak RSS" for m in modes) + " |",
             "|---:|" + "---:|" * len(modes)]
    for n in sizes:
        cells = [f"{by[n, m]['first_step_s']:.1f} s / {by[n, m]['peak_rss_mb']:.0f} MiB" if (n, m) in by else ""
                 for m in modes]
        lines.append(f"| {n:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
