"""The policy update with and without length-sorted, trimmed micro-batches, on completions of spread-out lengths.

    python benchmarks/micro_batches.py [--size tiny|small] [--micro 16] [--min-len 16] [--max-len 256] [--repeats 3]

`rl_step.py` measures whole steps, where the tiny models' completions are short and alike (a counting rationale of
10-25 tokens), so micro-batch padding costs little there. Real reasoning completions spread from tens to thousands of
tokens; this benchmark gives the update that situation on purpose: P prompts x G completions (token ids drawn at random
from the ordinary vocabulary), split into micro-batches of --micro sequences. Each prompt draws a typical length
uniformly from [--min-len, --max-len] and each of its completions that length times a factor uniform in
[1 - --group-spread, 1 + --group-spread] (clipped to the range): completions of one prompt are alike, as a question's
difficulty sets its answer's length. `--group-spread -1` draws every completion's length independently instead (the
worst case for sorting whole groups: every group then reaches near --max-len). The same batch is updated alternately with `algorithm.length_sorted_micro_batches` on and off
(one on-policy Dr. GRPO step, fresh copy of the model each time), and the JSON records the seconds of each update,
the completion tokens the forward passes processed (padding included) and the loss (equal on both sides).
Writes benchmarks/results/micro_batches/micro_batches_<size>.json (or --out) atomically.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rl_step import RESULTS as RL_RESULTS, prepare, write_json  # noqa: E402  (same model and data as rl_step.py)

RESULTS = Path("benchmarks/results/micro_batches")


def build_batch(model_dir: Path, data_dir: Path, prompts: int, group: int, min_len: int, max_len: int, seed: int,
                spread: float):
    import torch

    from mmrft.config import ModelConfig
    from mmrft.data.collate import encode_prompts
    from mmrft.data.sources import load_samples
    from mmrft.models.load import load_policy, media_token_ids
    from mmrft.train.forward import build_sequences

    model, processor = load_policy(ModelConfig(path=str(model_dir)))
    samples = load_samples(str(data_dir / "data.jsonl"))[:prompts]
    batch = encode_prompts(processor, samples)
    g = torch.Generator().manual_seed(seed)
    n = prompts * group
    if spread < 0:
        lengths = torch.randint(min_len, max_len + 1, (n,), generator=g)
    else:
        typical = torch.empty(prompts).uniform_(min_len, max_len, generator=g).repeat_interleave(group)
        factor = torch.empty(n).uniform_(1 - spread, 1 + spread, generator=g)
        lengths = (typical * factor).round().long().clamp(min_len, max_len)
    special = set(processor.tokenizer.all_special_ids) | set(media_token_ids(processor, model))
    ordinary = torch.tensor([i for i in range(len(processor.tokenizer)) if i not in special])
    ids = ordinary[torch.randint(len(ordinary), (n, max_len), generator=g)]
    mask = (torch.arange(max_len).unsqueeze(0) < lengths.unsqueeze(1)).float()
    ids = torch.where(mask.bool(), ids, torch.full_like(ids, processor.tokenizer.pad_token_id))
    seqs = build_sequences(batch, ids, mask, group, media_token_ids(processor, model))
    advantages = torch.randn(n, generator=g)
    return model, seqs, mask, advantages, lengths


def processed_tokens(seqs, micro: int, sort: bool) -> int:
    """Completion columns x rows over the micro-batches one update runs (what the forward passes pay for)."""
    from mmrft.train.update import micro_batch_plan

    return sum(sub.size * sub.width for _, sub in micro_batch_plan(seqs, list(range(seqs.num_groups)), micro, sort))


def one_update(model, seqs, mask, advantages, micro: int, sort: bool, max_len: int) -> tuple[float, float]:
    from mmrft.config import AlgorithmConfig
    from mmrft.train.optim import make_optimizer
    from mmrft.train.update import policy_update

    model = copy.deepcopy(model)
    model.train()
    opt, sched = make_optimizer(model, lr=1e-5, weight_decay=0.0, warmup_steps=0)
    algo = AlgorithmConfig(advantage="dr_grpo", loss_agg_mode="seq-mean-token-sum-norm", micro_batch_size=micro,
                           kl_coef=0.0, length_sorted_micro_batches=sort)
    t0 = time.perf_counter()
    metrics = policy_update(model, opt, sched, seqs, mask, advantages, algo, temperature=1.0, max_len=max_len,
                            max_grad_norm=1.0)
    return time.perf_counter() - t0, float(metrics["loss"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=("tiny", "small"), default="tiny")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--micro", type=int, default=16, help="sequences per micro-batch")
    ap.add_argument("--min-len", type=int, default=16)
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--group-spread", type=float, default=0.25,
                    help="relative spread of completion lengths within a group (-1: independent lengths)")
    ap.add_argument("--repeats", type=int, default=3, help="updates per setting (alternating, after one warm-up each)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else RESULTS / f"micro_batches_{args.size}.json"
    model_dir, data_dir, info = prepare(args.size, max(256, args.prompts), RL_RESULTS / args.size)
    model, seqs, mask, adv, lengths = build_batch(model_dir, data_dir, args.prompts, args.group, args.min_len,
                                                  args.max_len, args.seed, args.group_spread)
    settings = {"sorted": True, "unsorted": False}
    times: dict[str, list[float]] = {k: [] for k in settings}
    losses: dict[str, float] = {}
    for name, sort in settings.items():  # warm-up
        one_update(model, seqs, mask, adv, args.micro, sort, args.max_len)
    for r in range(args.repeats):
        order = list(settings.items()) if r % 2 == 0 else list(settings.items())[::-1]
        for name, sort in order:
            s, loss = one_update(model, seqs, mask, adv, args.micro, sort, args.max_len)
            times[name].append(s)
            losses[name] = loss
            print(f"repeat {r + 1}: {name}: {s:.2f} s", flush=True)
    result = {
        "benchmark": "micro_batches", "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": args.threads,
                    "torch": torch.__version__},
        "model": info, "prompts": args.prompts, "group": args.group, "micro_batch_size": args.micro,
        "group_spread": args.group_spread,
        "completion_lengths": {"min": int(lengths.min()), "max": int(lengths.max()),
                               "mean": float(lengths.float().mean())},
        "settings": {name: {"update_s": times[name], "update_s_median": statistics.median(times[name]),
                            "completion_tokens_processed": processed_tokens(seqs, args.micro, sort),
                            "loss": losses[name]} for name, sort in settings.items()},
        "valid_completion_tokens": int(lengths.sum()),
    }
    med = {k: v["update_s_median"] for k, v in result["settings"].items()}
    result["unsorted_over_sorted"] = med["unsorted"] / med["sorted"]
    write_json(out, result)
    for name, v in result["settings"].items():
        print(f"{name:9s} update median {v['update_s_median']:.2f} s  tokens processed "
              f"{v['completion_tokens_processed']} (valid {result['valid_completion_tokens']})  loss {v['loss']:.6f}")
    print(f"unsorted / sorted: {result['unsorted_over_sorted']:.2f}x\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
