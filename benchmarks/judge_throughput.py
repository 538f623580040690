"""Judged completions per second: the tiny generative judge in process (`local`) vs over HTTP (`http`, against
`transformers serve` on the same model), beside the rate at which the demo's GRPO rollout makes completions.

    .venv/bin/python benchmarks/judge_throughput.py                        # 64 requests per setting
    .venv/bin/python benchmarks/judge_throughput.py --quick                # 16 requests, for a smoke test
    .venv/bin/python benchmarks/judge_throughput.py --batch-sizes 1,8 --concurrency 1,4,16 --threads 1

The judge model is the demo's tiny Qwen2-VL (random weights, `make_tiny_model(corpus=tokenizer_corpus())`, seed 0),
built under `--workdir` (default: a temporary directory). The requests are one GRPO step's worth of the demo's count
task: 8 scenes (112x112 images) x 8 completions (`<think>…</think><answer>N</answer>` with N around the true
count), judged with the built-in `correctness` template (question, reference, completion, extracted answer, the
image). A random model never writes its end-of-turn token, so every reply is exactly `--max-new-tokens` tokens long
(default 8: a real judge says yes/no in about 2 tokens, a short reason in 8); its verdicts are mostly unreadable,
which costs nothing extra (the parser runs either way) and is counted.

* `local`: `LocalJudge` (`mmrft.judges.local`) with batch sizes `--batch-sizes` (greedy `generate`, left padded).
* `http`: `HttpJudge` (`mmrft.judges.http`) against `transformers serve` (started here with `python -m mmrft.judges.serve`), at
  concurrencies `--concurrency`. The server runs the model in a process of its own; by default it generates one
  request at a time (no continuous batching), so concurrency only overlaps HTTP and pre/post-processing.
* `rollout`: the demo's rollout, `HFRolloutEngine` with its settings (8 prompts x 8 completions, at most 32 new
  tokens, temperature 1, shared prefill) on the same model: completions per second, for scale. With random
  weights every completion is 32 tokens long (the demo's SFT model stops earlier).

Each setting runs one warm-up call, then `--repeats` timed calls over all the requests (the median is reported).
`--threads` sets torch's threads in this process and OMP_NUM_THREADS of the server. The machine may be busy: the
load average at start and end is recorded. Results go to `--out` as JSON (written atomically) with the machine, the
versions and the command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

OUT = ROOT / "benchmarks" / "results" / "judge_throughput.json"
DATA_SEED = 2  # the demo's RL split


def build(workdir: Path, prompts: int) -> tuple[Path, list]:
    """The tiny judge model and the demo's count scenes."""
    from mmrft.data.sources import load_samples
    from mmrft.data.synthetic import tokenizer_corpus, write_dataset
    from mmrft.models.tiny import make_tiny_model

    model_dir = workdir / "model"
    if not (model_dir / "config.json").exists():
        make_tiny_model(model_dir, arch="qwen2_vl", corpus=tokenizer_corpus(), seed=0, overwrite=True)
    data = write_dataset("count", prompts, workdir / "data", seed=DATA_SEED)
    return model_dir, load_samples(data)


def judge_requests(samples: list, group: int, n: int) -> list:
    """`n` requests: each scene's `group` completions, answers spread around the true count."""
    from mmrft.judges.base import JudgeRequest

    out = []
    for k in range(n):
        s = samples[(k // group) % len(samples)]
        true = int(s.answer)
        answer = max(0, true + (k % group) % 3 - 1)
        completion = f"<think>I see {answer} red circles, counting from left to right.</think><answer>{answer}</answer>"
        out.append(JudgeRequest(sample_id=s.id, question=s.prompt, completion=completion, answer=str(answer),
                                gold=str(s.answer), images=tuple(s.images)))
    return out


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def summary(n: int, times: list[float], results: list) -> dict:
    med = statistics.median(times)
    return {"requests": n, "seconds": times, "seconds_median": med, "judged_per_s": n / med,
            "verdict_errors": sum(1 for r in results if r.error and r.error.startswith("verdict")),
            "other_errors": sum(1 for r in results if r.error and not r.error.startswith("verdict"))}


def run_local(model_dir: Path, requests: list, batch_sizes: list[int], max_new_tokens: int, repeats: int) -> dict:
    from mmrft.judges.local import LocalJudge

    out = {}
    for bs in batch_sizes:
        judge = LocalJudge(name=f"local_bs{bs}", path=str(model_dir), batch_size=bs, max_new_tokens=max_new_tokens)
        judge.score(requests[:bs])  # warm-up
        box: dict = {}
        times = timed(lambda: box.__setitem__("r", judge.score(requests)), repeats)
        out[f"batch_size={bs}"] = summary(len(requests), times, box["r"])
        print(f"local  batch_size={bs:<3} {out[f'batch_size={bs}']['judged_per_s']:7.2f} judged/s", flush=True)
        judge.close()
    return out


def start_server(model_dir: Path, workdir: Path, threads: int, continuous_batching: bool) -> tuple:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = workdir / "serve.log"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "mmrft.judges.serve", str(model_dir), "--host", "127.0.0.1",
           "--port", str(port), "--device", "cpu", "--dtype", "float32", "--log-level", "warning"]
    if continuous_batching:
        cmd.append("--continuous-batching")
    t0 = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    while True:
        try:
            urllib.request.urlopen(url + "/models", timeout=5).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() - t0 > 300:
                proc.kill()
                raise RuntimeError(f"transformers serve did not start; log:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.25)
    return proc, url, time.monotonic() - t0


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(15)


def run_http(url: str, model_dir: Path, requests: list, concurrencies: list[int], max_new_tokens: int,
             repeats: int) -> dict:
    from mmrft.judges.http import HttpJudge

    out = {}
    for c in concurrencies:
        judge = HttpJudge(name=f"http_c{c}", url=url, model=str(model_dir), concurrency=c, max_tokens=max_new_tokens,
                          timeout_s=600, retries=0)
        judge.score(requests[:c])  # warm-up
        box: dict = {}
        times = timed(lambda: box.__setitem__("r", judge.score(requests)), repeats)
        out[f"concurrency={c}"] = summary(len(requests), times, box["r"])
        out[f"concurrency={c}"]["max_in_flight"] = judge.counters()["max_in_flight"]
        print(f"http   concurrency={c:<3} {out[f'concurrency={c}']['judged_per_s']:7.2f} judged/s", flush=True)
        judge.close()
    return out


def run_rollout(model_dir: Path, samples: list, prompts: int, group: int, max_new_tokens: int, repeats: int) -> dict:
    """The demo's GRPO rollout (rollout.* of mmrft/configs/demo_grpo.yaml) with the hf engine."""
    from mmrft.data.collate import encode_prompts
    from mmrft.models.load import load_policy
    from mmrft.config import ModelConfig
    from mmrft.rollout.engine import SamplingParams
    from mmrft.rollout.hf import HFRolloutEngine

    model, processor = load_policy(ModelConfig(path=str(model_dir)), "cpu")
    engine = HFRolloutEngine(model, processor, share_prefill=True)
    batch = encode_prompts(processor, samples[:prompts], fmt="r1")
    params = SamplingParams(n=group, max_new_tokens=max_new_tokens, temperature=1.0)
    engine.generate(batch, params)  # warm-up
    tokens: list[int] = []
    times = timed(lambda: tokens.append(int(engine.generate(batch, params).completion_mask.sum())), repeats)
    med = statistics.median(times)
    result = {"prompts": prompts, "group": group, "max_new_tokens": max_new_tokens, "seconds": times,
              "seconds_median": med, "completions_per_s": prompts * group / med,
              "mean_completion_tokens": statistics.mean(tokens) / (prompts * group)}
    print(f"rollout {prompts}x{group} {result['completions_per_s']:7.2f} completions/s", flush=True)
    return result


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=64, help="requests per setting (8 completions per scene)")
    ap.add_argument("--batch-sizes", type=ints, default=[1, 4, 16], help="LocalJudge batch sizes")
    ap.add_argument("--concurrency", type=ints, default=[1, 4, 16], help="HttpJudge concurrencies")
    ap.add_argument("--max-new-tokens", type=int, default=8, help="judge reply length")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--continuous-batching", action="store_true", help="start transformers serve with it")
    ap.add_argument("--no-rollout", action="store_true", help="skip the rollout comparison")
    ap.add_argument("--quick", action="store_true", help="16 requests, one repeat")
    ap.add_argument("--workdir", help="where the model and data go (default: a temporary directory)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    if args.quick:
        args.requests, args.repeats = 16, 1
    import torch
    import transformers

    from mmrft import atomic

    torch.set_num_threads(args.threads)
    group = 8
    tmp = None
    if args.workdir:
        workdir = Path(args.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="judge_throughput_")
        workdir = Path(tmp.name)
    load_start = os.getloadavg()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    try:
        model_dir, samples = build(workdir, max(1, args.requests // group))
        requests = judge_requests(samples, group, args.requests)
        local = run_local(model_dir, requests, args.batch_sizes, args.max_new_tokens, args.repeats)
        proc, url, startup = start_server(model_dir, workdir, args.threads, args.continuous_batching)
        try:
            http = run_http(url, model_dir, requests, args.concurrency, args.max_new_tokens, args.repeats)
        finally:
            stop_server(proc)
        rollout = None if args.no_rollout else run_rollout(model_dir, samples, 8, group, 32, args.repeats)
    finally:
        if tmp is not None:
            tmp.cleanup()
    result = {
        "benchmark": "judge_throughput", "started": started,
        "command": " ".join(["benchmarks/judge_throughput.py", *argv]),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)), "threads": args.threads,
                    "python": platform.python_version(), "torch": torch.__version__,
                    "transformers": transformers.__version__, "loadavg_start": load_start,
                    "loadavg_end": os.getloadavg()},
        "judge": {"model": "tiny qwen2_vl (make_tiny_model, tokenizer_corpus(), seed 0, random weights)",
                  "template": "correctness", "verdict": "yes_no", "max_new_tokens": args.max_new_tokens,
                  "images_per_request": 1, "requests": args.requests, "repeats": args.repeats},
        "local": local,
        "http": {"server": "transformers serve" + (" --continuous-batching" if args.continuous_batching else ""),
                 "server_startup_s": startup, **http},
        "rollout": rollout,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
