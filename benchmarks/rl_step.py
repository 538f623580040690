"""One GRPO step, mmrft vs Hugging Face TRL's `GRPOTrainer` vs the bare model's floor: same tiny Qwen2-VL, same
counting data, same work.

    python benchmarks/rl_step.py --size tiny|small [--steps N] [--warmup W] [--rounds R] [--out PATH]
                                 [--frameworks mmrft trl floor floor-plain]

Builds (or reuses, under benchmarks/results/rl_step/<size>/) a locally made Qwen2-VL (`tiny`: 2.3 M parameters,
112-px images; `small`: ~30 M, 224-px images) and a synthetic `count` dataset, then runs the contenders
alternately, each in a fresh subprocess per round (`rl_step_mmrft.py`, `rl_step_trl.py`, `rl_step_floor.py`), so
that each one's memory is its own and none warms another's caches; the order alternates between rounds. Each run
does W warm-up steps (left out of the figures) and N measured steps. TRL needs `pip install trl` beside mmrft (see
`mmrft[bench]`); without it the default leaves TRL out and runs the others.

The floor (`rl_step_floor.py`): the same step with plain `transformers` / `torch` calls and nothing else: encode
the P prompts, one `generate` of the P x G completions, one forward/backward over the same prompt + completion
tokens (a loss of Dr. GRPO's shape on a fixed advantage, no reward), gradient clipping, one AdamW step. `floor`
computes each prompt once per group (prefill and training forward), the same computation as mmrft's default;
`floor-plain` is the naive `generate(num_return_sequences=G)` + full-sequence forward. mmrft / floor is mmrft's
overhead over the least work the step needs (target: <= 1.5x); sampled lengths differ from run to run, so the
ratio is also given per generated token.

The work is the same on both sides (every knob is listed under "mapping" in the JSON): P prompts per step x G
completions each, at most T new tokens, temperature 1, learning rate 1e-4, no KL, Dr. GRPO (advantage = reward minus
group mean, token-sum loss over a constant G*P*T), one on-policy optimizer step per batch, fp32, no activation
checkpointing, the same torch threads, the same prompts in the same order at every step (TRL's dataset is laid out in
the order mmrft's sampler draws), the same chat template and image, mmrft's `count` reward on both sides.

Figures: seconds per step (median/min/max over the measured steps of all rounds; per framework the step as it
defines it: mmrft's `time/step`, TRL's on_step_begin -> on_step_end; plus the wall interval between consecutive step
ends, which also holds data loading and logging), completions/s, generated tokens/s (per step, and per second of
rollout), peak RSS of the run's main process and of its process tree, the time split per phase and the mean reward
of every step. Written atomically to `--out` (default benchmarks/results/rl_step/rl_step_<size>.json).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = Path("benchmarks/results/rl_step")
TASK = "count"
MODEL_SEED = 0
DATA_SEED = 2  # the demo's RL split seed
FRAMEWORKS = ("mmrft", "trl", "floor", "floor-plain")
CHILD = {"mmrft": HERE / "rl_step_mmrft.py", "trl": HERE / "rl_step_trl.py", "floor": HERE / "rl_step_floor.py",
         "floor-plain": HERE / "rl_step_floor.py"}
FLOOR_MODE = {"floor": "shared", "floor-plain": "plain"}
FLOOR_TARGET = 1.5  # issue 22: mmrft's step within 1.5x of the floor

# How each shared setting is spelled on the two sides (copied into the JSON; the children implement exactly this).
MAPPING = {
    "prompts per step P": ["rollout.prompts_per_step=P",
                           "GRPOConfig(per_device_train_batch_size=P*G, steps_per_generation=1, "
                           "gradient_accumulation_steps=1) -> generation_batch_size=P*G"],
    "completions per prompt G": ["rollout.group_size=G", "num_generations=G"],
    "max new tokens T": ["rollout.max_new_tokens=T", "max_completion_length=T"],
    "sampling": ["rollout.temperature=1.0 top_p=1.0 top_k=0", "temperature=1.0 top_p=1.0 top_k=0"],
    "suppressed tokens while sampling": [
        "media placeholder ids (mmrft.models.load.media_token_ids)",
        "generation_kwargs={'suppress_tokens': the same ids} (TRL's own default suppresses only the image token)"],
    "advantage": ["algorithm.name=dr_grpo: r - mean_group(r), no std division",
                  "scale_rewards='none': r - mean_group(r)"],
    "loss aggregation": ["loss_agg_mode=seq-mean-token-sum-norm: sum of token losses / (n_seqs * T)",
                         "loss_type='dr_grpo': sum of token losses / (batch_size * max_completion_length)"],
    "policy loss": ["ppo_clip, clip 0.2/0.2", "epsilon=0.2 (epsilon_high=epsilon)"],
    "KL": ["kl_coef=0 (no reference model)", "beta=0.0 (no reference model)"],
    "updates per batch": ["ppo_epochs=1, minibatches=1, micro_batch_size=P*G (one forward/backward)",
                          "num_iterations=1, steps_per_generation=1, gradient_accumulation_steps=1"],
    "old log-probs": ["none: single on-policy step, ratio from detached current log-probs",
                      "none: same rule (generate_every == gradient_accumulation_steps)"],
    "optimizer": ["torch.optim.AdamW lr=1e-4 weight_decay=0 betas=(0.9,0.999) eps=1e-8, constant LR, no warm-up",
                  "optim='adamw_torch' (unfused torch AdamW) learning_rate=1e-4 weight_decay=0 "
                  "lr_scheduler_type='constant' warmup_steps=0"],
    "gradient clipping": ["trainer.max_grad_norm=1.0", "max_grad_norm=1.0"],
    "precision": ["model.dtype=float32", "bf16=False fp16=False, model_init_kwargs={'dtype': 'float32'}"],
    "activation checkpointing": ["model.gradient_checkpointing=false", "gradient_checkpointing=False"],
    "entropy": ["computed in the update forward, coefficient 0", "computed in the loss forward, coefficient 0"],
    "reward": ["count (mmrft.rewards) via the timed reward worker (rewards.workers=1, mmrft's default)",
               "reward_funcs=[wrapper calling mmrft.rewards.get_reward('count')(text, sample)] in-process"],
    "prompt": ["mmrft.data.prompts.build_messages(prompt, 1, 'r1') + processor chat template",
               "the same messages as a conversational 'prompt' column + 'image' column; TRL applies the same "
               "processor's chat template (checked: identical prompt token ids and pixel values)"],
    "data order": ["mmrft's PromptSampler, seed S", "dataset rows laid out in that order, shuffle_dataset=False"],
    "device / threads": ["CPU (CUDA_VISIBLE_DEVICES=''), trainer.threads=N, OMP/MKL_NUM_THREADS=N",
                         "use_cpu=True, torch.set_num_threads(N), OMP/MKL_NUM_THREADS=N"],
    "tracking": ["metrics.jsonl only (tracking.tensorboard=false)", "report_to=[], logging_steps=1"],
    "seed": ["trainer.seed=S", "seed=S"],
}

# What the floor contenders do (rl_step_floor.py); the settings above (P, G, T, sampling, suppressed ids, lr, AdamW,
# clipping, fp32, threads, prompts and their order) are the same.
FLOOR_WORK = {
    "encode": "the step's P images from disk, build_messages(prompt, 1, 'r1') through the processor's chat template, "
              "one processor call (left padded); prompt token ids checked equal to mmrft's",
    "generate": "one model.generate call for the P*G rows (as mmrft: one call per step); floor: each prompt "
                "prefilled once, KV cache repeated G times; floor-plain: num_return_sequences=G",
    "update": "one forward with gradients over the same prompt + completion tokens (floor: prompts once, completions "
              "continuing from the repeated cache; floor-plain: the P*G full sequences), log-probs of the completion "
              "tokens, loss -(logp * adv * mask).sum() / (P*G*T) with a fixed zero-mean advantage per group, "
              "backward, clip_grad_norm 1.0, torch.optim.AdamW step, zero_grad",
    "not done": "rewards, advantage estimation from rewards, entropy, metrics, logging, reward worker, checkpoints",
    "lengths": "the model's own (stops at its end tokens, no min_new_tokens), as in mmrft: tokens per step and the "
               "longest completion (decode steps) are reported for every contender, and the ratio per token",
}

def write_json(path: Path, obj) -> Path:
    """Temporary file beside `path`, fsync, `os.replace`: a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=2, default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def rusage_mb() -> dict[str, float]:
    """Peak RSS of this process and of its waited-for children (e.g. mmrft's reward worker), in MiB."""
    import resource

    return {"self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


class TreeRSS:
    """Samples the summed RSS of a process and all its descendants (psutil) every `interval` s; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            import psutil
        except ImportError:
            return
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            total = 0
            try:
                for p in [root, *root.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                break
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> "TreeRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _stats(xs: list[float]) -> dict[str, float | None]:
    if not xs:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def _med(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# ----------------------------------------------------------------------------------------------- set-up


def prepare(size: str, n_rows: int, workdir: Path, model: str | None = None) -> tuple[Path, Path, dict]:
    """The model (built, or `model` as given) and the dataset, reused when already built with the same settings."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from mmrft.data.synthetic import tokenizer_corpus, write_dataset
    from mmrft.models.tiny import SIZES, make_tiny_model

    spec = SIZES[size]
    model_dir = workdir / "model"
    meta = model_dir / "mmrft_tiny.json"
    want = {"arch": "qwen2_vl", "size": size, "seed": MODEL_SEED}
    if model is not None:
        model_dir = Path(model)
    elif not (meta.is_file() and json.loads(meta.read_text()) == want):
        print(f"building the {size} model in {model_dir}", flush=True)
        make_tiny_model(model_dir, arch="qwen2_vl", size=size, corpus=tokenizer_corpus(),
                        seed=MODEL_SEED, overwrite=True)
    data_dir = workdir / "data"
    key_file = data_dir / "bench_key.json"
    key = {"task": TASK, "seed": DATA_SEED, "image_size": spec.image_size}
    old = json.loads(key_file.read_text()) if key_file.is_file() else {}
    if not ({k: old.get(k) for k in key} == key and old.get("n", 0) >= n_rows and (data_dir / "data.jsonl").is_file()):
        print(f"writing {n_rows} '{TASK}' scenes ({spec.image_size} px) to {data_dir}", flush=True)
        write_dataset(TASK, n_rows, data_dir, seed=DATA_SEED, image_size=spec.image_size)
        write_json(key_file, {**key, "n": n_rows})
    n_params = _count_params(model_dir / "model.safetensors")
    return model_dir, data_dir, {"path": str(model_dir), "size": size, "given": model is not None,
                                 "parameters": n_params,
                                 "image_size": spec.image_size, "hidden": spec.hidden, "layers": spec.layers,
                                 "vision_depth": spec.vision_depth}


def _count_params(path: Path) -> int:
    from safetensors import safe_open

    n = 0
    with safe_open(str(path), "pt") as f:
        for k in f.keys():
            shape = f.get_slice(k).get_shape()
            c = 1
            for d in shape:
                c *= d
            n += c
    return n


def prompt_order(n_rows: int, steps: int, prompts: int, seed: int) -> list[list[int]]:
    """The dataset rows mmrft draws at each step (its own sampler, seeded as `train_rl` seeds it)."""
    import torch

    from mmrft.train.samplers import PromptSampler

    sampler = PromptSampler(n_rows, prompts, torch.Generator().manual_seed(seed))
    return [next(sampler) for _ in range(steps)]


# ----------------------------------------------------------------------------------------------- children


def run_child(framework: str, spec: dict, workdir: Path, round_no: int, position: int) -> dict:
    tag = f"{framework}-r{round_no}"
    spec_path = workdir / "runs" / f"{tag}.spec.json"
    result_path = workdir / "runs" / f"{tag}.result.json"
    log_path = workdir / "runs" / f"{tag}.log"
    result_path.unlink(missing_ok=True)
    extra = {"floor_mode": FLOOR_MODE[framework]} if framework in FLOOR_MODE else {}
    write_json(spec_path, {**spec, **extra, "run_dir": str(workdir / "runs" / tag)})
    threads = str(spec["threads"])
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "CUDA_VISIBLE_DEVICES": "",
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, str(CHILD[framework]), str(spec_path), str(result_path)]
    print(f"round {round_no}: {framework} ...", flush=True)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=os.getcwd())
        with TreeRSS(proc.pid) as tree:
            code = proc.wait()
    wall = time.perf_counter() - t0
    if code != 0 or not result_path.is_file():
        tail = log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{framework} run (round {round_no}) failed with exit code {code}; log {log_path}:\n{tail}")
    res = json.loads(result_path.read_text())
    res.update(round=round_no, position=position, wall_s=wall, peak_tree_rss_mb=tree.peak / 2**20 or None,
               load_avg_before=load_before, load_avg_after=os.getloadavg(), log=str(log_path))
    return res


def summarise(rounds: list[dict], completions: int) -> dict:
    measured = [s for r in rounds for s in r["steps"] if not s["warmup"]]
    step_s = [s["step_s"] for s in measured]
    interval = [s["interval_s"] for s in measured if s.get("interval_s") is not None]
    cpu = [s["cpu_interval_s"] for s in measured if s.get("cpu_interval_s") is not None]
    tokens = [s["tokens"] for s in measured]
    per_step_tok_s = [t / s for t, s in zip(tokens, step_s)]
    rollout_tok_s = [s["tokens"] / s["rollout_s"] for s in measured if s.get("rollout_s")]
    med = _med(step_s)
    return {
        "step_s": _stats(step_s),
        "interval_s": _stats(interval),
        # CPU seconds of the run's main process (all its threads) between consecutive step ends: the work done,
        # less sensitive than wall time to other jobs on the machine (spin-waiting threads still count)
        "cpu_interval_s": _stats(cpu),
        "completions_per_s": completions / med if med else None,
        "gen_tokens_per_s": _med(per_step_tok_s),
        "rollout_tokens_per_s": _med(rollout_tok_s),
        "tokens_per_step": _med(tokens),
        "s_per_1k_tokens": _med([1000 * s / t for s, t in zip(step_s, tokens) if t]),
        "completion_length_mean": _med([s["completion_length_mean"] for s in measured]),
        # the longest completion of a step: how many decode steps `generate` ran (None where not recorded)
        "decode_steps": _med([s.get("completion_length_max") for s in measured]),
        "time_split_s": {k: _med([s.get(f"{k}_s") for s in measured])
                         for k in ("rollout", "reward", "prepare", "update")},
        "peak_rss_mb": max(r["rusage_mb"]["self"] for r in rounds),
        "peak_rss_children_mb": max(r["rusage_mb"]["children"] for r in rounds),
        "peak_tree_rss_mb": max((r["peak_tree_rss_mb"] or 0) for r in rounds) or None,
        "startup_s": _med([r.get("startup_s") for r in rounds]),
        "torch_threads": sorted({r.get("torch_threads") for r in rounds}),
        "reward_mean_measured": (statistics.fmean(s["reward_mean"] for s in measured)
                                 if measured and all(s["reward_mean"] is not None for s in measured) else None),
        "reward_mean_by_step": [[s["reward_mean"] for s in r["steps"]] for r in rounds],
    }


def _ratio(a, b):
    return a / b if a is not None and b else None


def compare(frameworks: dict) -> dict:
    """Ratios between the contenders present: TRL / mmrft, and each of mmrft and TRL over `floor` and `floor-plain`
    (per step, per generated token, rollout and update phases); whether the floor's prompt token ids equal mmrft's."""
    out: dict = {}
    summ = {fw: f["summary"] for fw, f in frameworks.items()}
    if "mmrft" in summ and "trl" in summ:
        out["trl_over_mmrft_step_s"] = _ratio(summ["trl"]["step_s"]["median"], summ["mmrft"]["step_s"]["median"])
    for floor in ("floor", "floor-plain"):
        if floor not in summ:
            continue
        f = summ[floor]
        out[f"over_{floor.replace('-', '_')}"] = {
            fw: {"step_s": _ratio(summ[fw]["step_s"]["median"], f["step_s"]["median"]),
                 "interval_s": _ratio(summ[fw]["interval_s"]["median"], f["interval_s"]["median"]),
                 "cpu_interval_s": _ratio((summ[fw].get("cpu_interval_s") or {}).get("median"),
                                          (f.get("cpu_interval_s") or {}).get("median")),
                 "per_token": _ratio(summ[fw]["s_per_1k_tokens"], f["s_per_1k_tokens"]),
                 "rollout_s": _ratio(summ[fw]["time_split_s"]["rollout"], f["time_split_s"]["rollout"]),
                 "update_s": _ratio(summ[fw]["time_split_s"]["update"], f["time_split_s"]["update"]),
                 "tokens_per_step": _ratio(summ[fw]["tokens_per_step"], f["tokens_per_step"])}
            for fw in ("mmrft", "trl") if fw in summ}
    if "mmrft" in summ and "floor" in summ:
        m = out["over_floor"]["mmrft"]["step_s"]
        out["mmrft_over_floor_step_s"] = m
        out["mmrft_within_floor_target"] = m is not None and m <= FLOOR_TARGET
    floors = [fw for fw in ("floor", "floor-plain") if fw in frameworks]
    if "mmrft" in frameworks and floors:
        ids = {tuple(r.get("first_prompt_ids") or ()) for fw in ["mmrft", *floors] for r in frameworks[fw]["rounds"]}
        out["floor_same_prompt_ids"] = len(ids) == 1 and () not in ids
    return out


def _fmt(x, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def table(res: dict) -> str:
    head = ["framework", "s/step med", "min", "max", "interval", "CPU s", "compl/s", "gen tok/s", "tok/step", "decode",
            "rollout", "reward", "prepare", "update", "peak RSS MB", "tree RSS MB", "reward"]
    rows = [head]
    for fw, r in res["frameworks"].items():
        s = r["summary"]
        t = s["time_split_s"]
        rows.append([fw, _fmt(s["step_s"]["median"]), _fmt(s["step_s"]["min"]), _fmt(s["step_s"]["max"]),
                     _fmt(s["interval_s"]["median"]), _fmt((s.get("cpu_interval_s") or {}).get("median")),
                     _fmt(s["completions_per_s"], ".1f"),
                     _fmt(s["gen_tokens_per_s"], ".0f"), _fmt(s["tokens_per_step"], ".0f"),
                     _fmt(s.get("decode_steps"), ".0f"), _fmt(t["rollout"]), _fmt(t["reward"], ".3f"),
                     _fmt(t["prepare"], ".3f"), _fmt(t["update"]), _fmt(s["peak_rss_mb"], ".0f"),
                     _fmt(s["peak_tree_rss_mb"], ".0f"), _fmt(s["reward_mean_measured"], ".3f")])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    ratio = res.get("trl_over_mmrft_step_s")
    if ratio:
        lines.append(f"TRL / mmrft seconds per step (medians): {ratio:.2f}x")
    for key, floor in (("floor", "floor"), ("floor_plain", "floor-plain")):
        ratios = res.get(f"over_{key}") or {}
        for fw, r in ratios.items():
            target = f"  (target <= {FLOOR_TARGET}x)" if fw == "mmrft" and key == "floor" else ""
            lines.append(f"{fw} / {floor}: {_fmt(r['step_s'])}x per step, {_fmt(r['per_token'])}x per generated "
                         f"token, {_fmt(r.get('cpu_interval_s'))}x CPU s; rollout {_fmt(r['rollout_s'])}x, "
                         f"update {_fmt(r['update_s'])}x{target}")
    if res.get("floor_same_prompt_ids") is not None:
        lines.append(f"floor and mmrft prompt token ids equal: {res['floor_same_prompt_ids']}")
    for fw, r in res["frameworks"].items():
        curves = r["summary"]["reward_mean_by_step"]
        if all(x is not None for x in curves[0]):
            lines.append(f"{fw} reward by step (round 1): " + " ".join(f"{x:.3f}" for x in curves[0]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=("tiny", "small"), default="tiny")
    ap.add_argument("--steps", type=int, default=5, help="measured steps per run (after the warm-up)")
    ap.add_argument("--warmup", type=int, default=1, help="steps per run left out of the figures")
    ap.add_argument("--rounds", type=int, default=2, help="runs per framework, alternating (order flips each round)")
    ap.add_argument("--prompts", type=int, default=8, help="prompts per step (P)")
    ap.add_argument("--group", type=int, default=8, help="completions per prompt (G)")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads on both sides")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frameworks", "--contenders", nargs="+", choices=FRAMEWORKS, default=None,
                    help="what to run (default: all four; TRL left out when it is not installed)")
    ap.add_argument("--out", help="result JSON (default benchmarks/results/rl_step/rl_step_<size>.json)")
    ap.add_argument("--mmrft-set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra mmrft config override, e.g. rollout.share_prefill=false to measure an optimisation "
                    "(repeatable; recorded in the JSON)")
    ap.add_argument("--model", help="start both frameworks from this checkpoint instead of the random --size model "
                    "(e.g. runs/demo/sft/final, whose rewards are informative); --size still sets the image size")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.rounds < 1 or args.group < 2 or args.prompts < 1:
        ap.error("need --steps >= 1, --warmup >= 0, --rounds >= 1, --group >= 2, --prompts >= 1")
    if args.frameworks is None:
        args.frameworks = list(FRAMEWORKS)
        if importlib.util.find_spec("trl") is None:
            print("TRL is not installed (pip install -e '.[bench]'): running without it", flush=True)
            args.frameworks.remove("trl")
    args.frameworks = list(dict.fromkeys(args.frameworks))
    out = Path(args.out) if args.out else RESULTS / f"rl_step_{args.size}.json"
    workdir = RESULTS / args.size
    load_start = os.getloadavg()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")

    total_steps = args.warmup + args.steps
    n_rows = max(256, total_steps * args.prompts)
    model_dir, data_dir, model_info = prepare(args.size, n_rows, workdir, args.model)
    # the sampler runs over the whole data file, which an earlier, longer run may have made bigger than n_rows
    with open(data_dir / "data.jsonl", encoding="utf-8") as fh:
        n_data = sum(1 for line in fh if line.strip())
    order = prompt_order(n_data, total_steps, args.prompts, args.seed)
    spec = {"model": str(model_dir.resolve()), "data": str(data_dir.resolve()), "prompts": args.prompts,
            "mmrft_set": list(args.mmrft_set),
            "group": args.group, "max_new_tokens": args.max_new_tokens, "temperature": 1.0, "lr": args.lr,
            "threads": args.threads, "seed": args.seed, "warmup": args.warmup, "steps": args.steps,
            "order": order}

    runs: dict[str, list[dict]] = {fw: [] for fw in args.frameworks}
    for r in range(1, args.rounds + 1):
        seq = list(args.frameworks) if r % 2 else list(reversed(args.frameworks))
        for pos, fw in enumerate(seq):
            res = run_child(fw, spec, workdir, r, pos)
            runs[fw].append(res)
            s = [x["step_s"] for x in res["steps"] if not x["warmup"]]
            print(f"round {r}: {fw}: {statistics.median(s):.2f} s/step (median of {len(s)}), "
                  f"peak RSS {res['rusage_mb']['self']:.0f} MB", flush=True)

    import torch
    import transformers

    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "transformers": transformers.__version__}
    for mod in ("trl", "mmrft", "accelerate", "datasets"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = None
    completions = args.prompts * args.group
    frameworks = {}
    for fw, rounds in runs.items():
        same = all(x["prompt_rows"] == order for x in rounds)
        frameworks[fw] = {"summary": summarise(rounds, completions), "same_prompts_as_expected": same,
                          "rounds": rounds}
    res = {
        "benchmark": "rl_step",
        "command": " ".join([sys.executable, *sys.argv]),
        "started": started,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {k: v for k, v in spec.items() if k not in ("order",)} | {
            "size": args.size, "rounds": args.rounds, "completions_per_step": completions, "task": TASK,
            "data_seed": DATA_SEED, "model_seed": MODEL_SEED, "algorithm": "Dr. GRPO (no KL, one on-policy step)"},
        "mapping": MAPPING,
        "floor_work": FLOOR_WORK,
        "model": model_info,
        "versions": versions,
        "machine": {"cpu_count": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
                    "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "load_avg_start": load_start, "load_avg_end": os.getloadavg()},
        "frameworks": frameworks,
    }
    res.update(compare(frameworks))
    write_json(out, res)
    print(table(res))
    print(f"wrote {out}")
    if not all(f["same_prompts_as_expected"] for f in frameworks.values()):
        print("warning: a framework did not draw the expected prompts (see same_prompts_as_expected)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
