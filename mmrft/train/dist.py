"""Data parallelism with torch.distributed: no-ops in one process, `torchrun` sets up the rest.

Each rank rolls out its own share of the step's prompts (whole groups: a prompt and its G completions never span
ranks), scores them with its own reward worker, and computes the loss of its share with the *global* aggregation
denominators; gradients are then summed over ranks before clipping and the optimizer step, so N processes make
exactly the update one process makes on the whole batch (tested with 2 gloo processes). Batch-level statistics
(REINFORCE++'s normalisation, PPO's advantage whitening) are computed over all ranks.

Gradients are summed with one `all_reduce` per parameter after the micro-batches of a minibatch (not DDP's bucketed
hooks): the training forward runs the model twice per micro-batch (prompt once, then the completions on its KV cache),
which DDP's one-forward-per-backward bookkeeping does not allow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.distributed as dist

from mmrft.algorithms import masked_whiten


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    fsdp: bool = False  # parameters sharded with FSDP2 (mmrft.train.fsdp): gradients arrive reduced already

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = DistContext()


def init_distributed(backend: str | None = None, fsdp: bool = False) -> DistContext:
    """Join the process group `torchrun` describes (WORLD_SIZE > 1), else the single-process context. Backend:
    nccl with CUDA, gloo on CPU. `fsdp`: the policy will be sharded (`mmrft.train.fsdp`)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend)
    return DistContext(rank, world, local, fsdp)


def shard(items: Sequence[Any], ctx: DistContext) -> list:
    """This rank's contiguous share of `items` (len(items) must divide evenly: the same work on every rank)."""
    if not ctx.enabled:
        return list(items)
    if len(items) % ctx.world_size:
        raise ValueError(f"{len(items)} items do not split evenly over {ctx.world_size} ranks; make "
                         "rollout.prompts_per_step a multiple of the number of processes")
    per = len(items) // ctx.world_size
    return list(items[ctx.rank * per : (ctx.rank + 1) * per])


def all_sum(values: Sequence[float], ctx: DistContext) -> list[float]:
    """Element-wise sum of `values` over ranks (float64)."""
    if not ctx.enabled:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def all_max(value: int, ctx: DistContext) -> int:
    """The largest `value` over ranks."""
    if not ctx.enabled:
        return int(value)
    t = torch.tensor([int(value)], dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def all_gather_list(values: list, ctx: DistContext) -> list[list]:
    """Every rank's list (ranks may hold different lengths), in rank order."""
    if not ctx.enabled:
        return [values]
    out: list = [None] * ctx.world_size
    dist.all_gather_object(out, values)
    return out


def sum_gradients(params: Sequence[torch.nn.Parameter], ctx: DistContext) -> None:
    """Replace every gradient by its sum over ranks (a parameter without a gradient counts as zeros). Under FSDP the
    backward pass has reduce-scattered the gradient shards already, as a mean: scale them to the sum."""
    if not ctx.enabled:
        return
    if ctx.fsdp:
        for p in params:
            if p.grad is not None:
                p.grad.mul_(ctx.world_size)
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)


def global_advantages(estimator, rewards: torch.Tensor, group_ids: torch.Tensor, mask: torch.Tensor, ctx: DistContext,
                      **options) -> torch.Tensor:
    """Run an outcome estimator over the rewards (and loss masks) of all ranks, so batch-level statistics see the
    whole batch, and return this rank's rows ([N] or [N, T], cut to this rank's mask width). Group ids are made
    unique per rank."""
    if not ctx.enabled:
        return estimator(rewards, group_ids, mask, **options)
    parts = all_gather_list([rewards.tolist(), group_ids.tolist(), mask.tolist()], ctx)
    all_r = torch.tensor([r for p in parts for r in p[0]], dtype=rewards.dtype)
    width = max((len(row) for p in parts for row in p[2]), default=0)
    all_mask = torch.tensor([row + [0] * (width - len(row)) for p in parts for row in p[2]], dtype=mask.dtype)
    offset, ids = 0, []
    for p in parts:
        ids.extend(g + offset for g in p[1])
        offset += (max(p[1]) + 1) if p[1] else 0
    adv = estimator(all_r, torch.tensor(ids), all_mask.view(len(all_r), width), **options)
    start = sum(len(p[0]) for p in parts[: ctx.rank])
    mine = adv[start : start + len(rewards)]
    if mine.dim() == 2:
        mine = mine[:, : mask.shape[1]]
    return mine.to(rewards.device)


def global_masked_whiten(x: torch.Tensor, mask: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """`mmrft.algorithms.masked_whiten` with the count, mean and unbiased variance of the valid entries of all
    ranks (in one process: its own, in float64)."""
    vals = x.detach()[mask.bool()].double()
    n, s, ss = all_sum([vals.numel(), vals.sum(), (vals * vals).sum()], ctx)
    mean = s / n if n else 0.0
    var = max(ss - n * mean * mean, 0.0) / (n - 1) if n > 1 else 0.0
    return masked_whiten(x, mask, stats=(int(n), mean, var))


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def destroy(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


_SUMMED = ("filter/groups_drawn", "filter/groups_kept", "reward/timeouts")


def reduce_metrics(metrics: dict[str, float], ctx: DistContext) -> dict[str, float]:
    """One row for the whole step: every rank's metrics combined — maxima (`*/max`, `*_max`) by max, minima by
    min, counts of groups, timeouts and judge requests summed, everything else averaged (ranks hold equal shares)."""
    if not ctx.enabled:
        return metrics
    rows = all_gather_list([metrics], ctx)
    out: dict[str, float] = {}
    for key in sorted({k for r in rows for k in r[0]}):
        vals = [r[0][key] for r in rows if r[0].get(key) is not None]
        if not vals:
            continue
        if key.endswith(("/max", "_max")):
            out[key] = max(vals)
        elif key.endswith(("/min", "_min")):
            out[key] = min(vals)
        elif key in _SUMMED or (key.startswith("judge/") and not key.endswith("/latency_s")):
            out[key] = sum(vals)
        else:
            out[key] = sum(vals) / len(vals)
    return out


def any_rank(flag: bool, ctx: DistContext) -> bool:
    """True on every rank when it is true on one (e.g. a stop signal reached only some ranks)."""
    return bool(all_sum([float(flag)], ctx)[0] > 0)
