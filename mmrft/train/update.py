"""One policy update over a rollout batch: PPO epochs x minibatches x micro-batches (gradient accumulation).

The loss of a minibatch is aggregated with the whole minibatch's denominators, so splitting it into micro-batches
changes nothing but peak memory (see `mmrft.algorithms.aggregate`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from mmrft.algorithms import POLICY_LOSSES, aggregate, aggregation_denominators, kl_penalty, masked_mean, options_for
from mmrft.algorithms.correction import correction_metrics, sampler_log_ratio
from mmrft.algorithms.registry import ROLLOUT_CORRECTIONS
from mmrft.config import AlgorithmConfig, RolloutConfig, algorithm_knobs
from mmrft.rollout.engine import group_rows
from mmrft.train.dist import SINGLE, DistContext, all_max, all_sum, sum_gradients
from mmrft.train.forward import SequenceBatch, completion_logprobs


def policy_loss_options(algo: AlgorithmConfig) -> dict:
    """The keyword options `algorithm.policy_loss` is called with: the `algorithm.*` knobs its signature names
    (clip_low, clip_high, dual_clip, ...), plus `algorithm.policy_loss_options` (KeyError for one it does not take)."""
    return options_for(POLICY_LOSSES[algo.policy_loss], algorithm_knobs(algo), algo.policy_loss_options,
                       "algorithm.policy_loss_options")


def rollout_correction(ro: RolloutConfig):
    """`rollout.correction` as `fn(log_ratio, mask) -> weights` with `rollout.correction_options` bound (KeyError for an
    option it does not take), or None when it is `none` (the loss is then left as it is)."""
    if ro.correction == "none":
        return None
    fn = ROLLOUT_CORRECTIONS[ro.correction]
    opts = options_for(fn, {}, ro.correction_options, "rollout.correction_options")
    return lambda log_ratio, mask: fn(log_ratio, mask, **opts)


def reference_context(model, ref_model):
    """The reference policy: a separate frozen copy, or for LoRA the base model with the adapter disabled."""
    if ref_model is not None:
        return ref_model, nullcontext()
    return model, model.disable_adapter()


def micro_batches(groups: list[int], n: int, micro_batch_size: int,
                  lengths: list[int] | None = None) -> list[list[int]]:
    """Split groups into micro-batches of about `micro_batch_size` sequences; a group (one prompt and its n
    completions) is never split, so its prompt is computed once. With `lengths` (one per group index, e.g.
    `SequenceBatch.group_lengths()`), groups are ordered longest first before the split, so each micro-batch holds
    groups of similar length and little padding once trimmed (the longest, most memory-hungry micro-batch comes
    first, so an out-of-memory error shows at once)."""
    per = max(1, micro_batch_size // n)
    if lengths is not None and len(groups) > per:
        groups = sorted(groups, key=lambda g: -lengths[g])  # stable: equal lengths keep their order
    return [groups[i : i + per] for i in range(0, len(groups), per)]


def micro_batch_plan(seqs: SequenceBatch, groups: list[int], micro_batch_size: int,
                     length_sorted: bool) -> list[tuple[list[int], SequenceBatch]]:
    """(groups, their SequenceBatch) of each micro-batch; `length_sorted` sorts groups by completion length and
    trims each micro-batch's completion padding (`algorithm.length_sorted_micro_batches`)."""
    lengths = seqs.group_lengths() if length_sorted else None
    return [(g, seqs.select_groups(g, trim=length_sorted))
            for g in micro_batches(groups, seqs.n, micro_batch_size, lengths)]


def aligned_over_ranks(plan: list[tuple[list[int] | None, SequenceBatch]], seqs: SequenceBatch,
                       ctx: DistContext) -> list[tuple[list[int] | None, SequenceBatch]]:
    """Under FSDP every forward and backward pass gathers and reduces weights with the other ranks, so every rank
    must run as many passes as the others: a rank with fewer micro-batches (fewer groups kept, an empty minibatch)
    gets stand-ins, `(None, its first group)`, whose result is multiplied by zero. Unchanged otherwise."""
    if not ctx.fsdp:
        return plan
    missing = all_max(len(plan), ctx) - len(plan)
    return plan + [(None, seqs.select_groups([0], trim=True))] * missing


def scores_in_micro_batches(score, seqs: SequenceBatch, micro_batch_size: int, length_sorted: bool,
                            ctx: DistContext = SINGLE) -> torch.Tensor:
    """`score(sub_batch) -> [rows, t]` over every micro-batch, assembled into [N, T] in row order (zeros past a
    trimmed micro-batch's width, where the completion mask is 0 anyway)."""
    out = None
    plan = micro_batch_plan(seqs, list(range(seqs.num_groups)), micro_batch_size, length_sorted)
    for groups, sub in aligned_over_ranks(plan, seqs, ctx):
        part = score(sub)
        if groups is None:  # a stand-in pass (FSDP)
            continue
        if out is None:
            out = part.new_zeros(seqs.size, seqs.width)
        out[group_rows(groups, seqs.n), : part.shape[1]] = part
    return out


def minibatch_schedule(
    n_groups: int, epochs: int, minibatches: int, generator: torch.Generator | None = None, exact: bool = False
) -> list[list[int]]:
    """The group indices of every optimizer step: `epochs` passes, each shuffled and cut into parts of
    ceil(n_groups / minibatches) groups (so at most `minibatches` parts). One epoch of one minibatch keeps the
    rollout order (on-policy). `exact`: every epoch has exactly `minibatches` parts, the last ones empty where the
    groups run out; data-parallel ranks holding different numbers of groups then still meet at every step's
    collectives (a part empty on every rank makes no step)."""
    single = epochs == 1 and minibatches == 1
    size = max(1, -(-n_groups // minibatches))
    plan = []
    for _ in range(epochs):
        order = list(range(n_groups)) if single else torch.randperm(n_groups, generator=generator).tolist()
        parts = [order[i : i + size] for i in range(0, n_groups, size)]
        plan.extend(parts + [[] for _ in range(minibatches - len(parts))] if exact else parts)
    return plan


def stepped_parameters(optimizer: torch.optim.Optimizer) -> list[torch.nn.Parameter]:
    """The parameters `optimizer` updates. Not `model.parameters()`: under FSDP a module lists its gathered copies
    while they are unsharded (the root stays so after a forward until its backward), and gradients summed or clipped
    there would miss the sharded parameters the optimizer steps."""
    return [p for group in optimizer.param_groups for p in group["params"]]


def optimizer_step(params, optimizer, scheduler, max_grad_norm: float) -> tuple[float, bool]:
    """Clip, step (skipped when the gradient is not finite), advance the schedule; (grad norm, stepped)."""
    grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    if hasattr(grad_norm, "full_tensor"):  # sharded (FSDP) gradients: the norm is a replicated DTensor
        grad_norm = grad_norm.full_tensor()
    finite = bool(torch.isfinite(grad_norm))
    if finite:
        optimizer.step()
    scheduler.step()
    return float(grad_norm), finite


@torch.no_grad()
def batched_logprobs(model, seqs: SequenceBatch, temperature: float, micro: int,
                     length_sorted: bool = True, ctx: DistContext = SINGLE) -> torch.Tensor:
    """Log-probs [N, T] of every completion, in row order, micro-batch by micro-batch."""
    return scores_in_micro_batches(lambda sub: completion_logprobs(model, sub, temperature)[0], seqs, micro,
                                   length_sorted, ctx)


def policy_update(
    model,
    optimizer,
    scheduler,
    seqs: SequenceBatch,
    mask: torch.Tensor,
    advantages: torch.Tensor,
    algo: AlgorithmConfig,
    *,
    temperature: float,
    max_len: int,
    max_grad_norm: float,
    ref_logp: torch.Tensor | None = None,
    old_logp: torch.Tensor | None = None,
    sampler_logp: torch.Tensor | None = None,
    correction=None,
    generator: torch.Generator | None = None,
    ctx: DistContext = SINGLE,
) -> dict[str, float]:
    """Runs `algo.ppo_epochs` x `algo.minibatches` optimizer steps; returns averaged metrics.

    `advantages` is [N] (outcome) or [N, T]; `mask` [N, T]. Old log-probs: given, or computed here before the first
    step; when there is exactly one optimizer step the update is on-policy and the current log-probs (detached)
    serve, saving a forward pass. The KL loss term is on when `algo.kl_coef > 0`, `ref_logp` is given and the KL is
    not folded into the reward (`algo.kl_in_reward`). With several processes (`ctx`), the aggregation denominators
    are those of the whole minibatch over all ranks and gradients are summed over ranks before clipping.

    Rollout correction: with the sampler's log-probs `sampler_logp` [N, T] and `correction` (`rollout_correction`),
    the policy loss of each token is multiplied by `correction(old - sampler)`, the importance weight of the trainer's
    old policy over the sampler (`mmrft.algorithms.correction`); the KL and entropy terms are not reweighted.
    """
    loss_fn, loss_opts = POLICY_LOSSES[algo.policy_loss], policy_loss_options(algo)
    adv = advantages if advantages.dim() == 2 else advantages.unsqueeze(1).expand_as(mask)
    single_step = algo.ppo_epochs == 1 and algo.minibatches == 1
    sort = algo.length_sorted_micro_batches
    if old_logp is None and not single_step:
        old_logp = batched_logprobs(model, seqs, temperature, algo.micro_batch_size, sort, ctx)
    use_kl_loss = algo.kl_coef > 0 and ref_logp is not None and not algo.kl_in_reward

    def loss_of(mb: MicroBatch) -> tuple[torch.Tensor, dict[str, float]]:
        idx, t, m = mb.rows, mb.seqs.width, mb.mask
        logp, entropy = completion_logprobs(model, mb.seqs, temperature, with_entropy=True)
        old = logp.detach() if old_logp is None else old_logp[idx, :t]
        loss_mat, metrics = loss_fn(logp, old, adv[idx, :t], m, **loss_opts)
        if correction is not None and sampler_logp is not None:
            log_ratio = sampler_log_ratio(old, sampler_logp[idx, :t], m)
            weights = correction(log_ratio, m)
            loss_mat = loss_mat * weights.to(loss_mat.dtype)
            metrics.update(correction_metrics(log_ratio, weights, m))
        if use_kl_loss:
            kl = kl_penalty(logp, ref_logp[idx, :t], kind=algo.kl_estimator)
            loss_mat = loss_mat + algo.kl_coef * kl
            metrics["kl"] = float(masked_mean(kl.detach(), m))
        if algo.entropy_coef > 0:
            loss_mat = loss_mat - algo.entropy_coef * entropy
        metrics["entropy"] = float(masked_mean(entropy.detach(), m))
        loss = aggregate(loss_mat, m, algo.loss_agg_mode, num_tokens=mb.num_tokens, num_seqs=mb.num_seqs,
                         max_len=max_len)
        return loss, metrics

    return minibatch_steps(optimizer, scheduler, seqs, mask, algo, max_grad_norm, loss_of,
                           lambda sub: completion_logprobs(model, sub, temperature)[0], "loss", generator, ctx)


@dataclass
class MicroBatch:
    """One micro-batch of a minibatch: its completion rows, their sequences (trimmed) and mask, and the whole
    minibatch's aggregation denominators (over all ranks)."""

    rows: list[int]
    seqs: SequenceBatch
    mask: torch.Tensor
    num_tokens: float
    num_seqs: float


def minibatch_steps(
    optimizer,
    scheduler,
    seqs: SequenceBatch,
    mask: torch.Tensor,
    algo: AlgorithmConfig,
    max_grad_norm: float,
    loss_of: Callable[[MicroBatch], tuple[torch.Tensor, dict[str, float]]],
    stand_in: Callable[[SequenceBatch], torch.Tensor],
    loss_name: str,
    generator: torch.Generator | None = None,
    ctx: DistContext = SINGLE,
) -> dict[str, float]:
    """The schedule the policy and the critic are both trained on: for each minibatch of `minibatch_schedule`, the
    aggregation denominators over all ranks, then gradient accumulation over its micro-batches (`loss_of` gives a
    micro-batch's loss and metrics; under FSDP `stand_in(sub)` is run times zero where this rank has fewer passes),
    gradients summed over ranks, clipped, one optimizer step. Returns the averaged metrics: `loss_name` summed over
    micro-batches, the others weighted by their micro-batch's share of the minibatch, then `average_step_metrics`."""
    sums: dict[str, float] = defaultdict(float)
    steps: dict[str, float] = defaultdict(float)
    count = local = 0
    params = stepped_parameters(optimizer)
    for mb in minibatch_schedule(seqs.num_groups, algo.ppo_epochs, algo.minibatches, generator, exact=ctx.enabled):
        mb_rows = group_rows(mb, seqs.n)
        num_tokens, num_seqs = all_sum(aggregation_denominators(mask[mb_rows]), ctx)
        if num_tokens == 0:  # every group here was filtered out: no step (Adam's momentum would still move)
            continue
        optimizer.zero_grad(set_to_none=True)
        plan = micro_batch_plan(seqs, mb, algo.micro_batch_size, algo.length_sorted_micro_batches)
        for groups, sub in aligned_over_ranks(plan, seqs, ctx):
            if groups is None:  # a stand-in pass (FSDP): the same gathers and reductions, nothing added
                (stand_in(sub).sum() * 0.0).backward()
                continue
            idx = group_rows(groups, seqs.n)
            loss, metrics = loss_of(MicroBatch(idx, sub, mask[idx, : sub.width], num_tokens, num_seqs))
            loss.backward()
            w = len(idx) / len(mb_rows)  # metrics of micro-batches weighted by their share of the minibatch
            sums[loss_name] += float(loss.detach())
            for k, v in metrics.items():
                sums[k] += w * float(v)
        sum_gradients(params, ctx)
        grad_norm, stepped = optimizer_step(params, optimizer, scheduler, max_grad_norm)
        steps["skipped_updates"] += 0.0 if stepped else 1.0
        steps["grad_norm"] += grad_norm
        count += 1
        local += bool(mb)
    return average_step_metrics(sums, local, steps, count)


def average_step_metrics(sums: dict[str, float], local: int, steps: dict[str, float], count: int) -> dict[str, float]:
    """Loss-side `sums` averaged over the optimizer steps in which this rank had groups (`local`), the global
    `grad_norm` over all `count` steps; `skipped_updates` stays a count."""
    out = {k: v / max(local, 1) for k, v in sums.items()}
    if count:
        out["grad_norm"] = steps["grad_norm"] / count
    out["skipped_updates"] = steps.get("skipped_updates", 0.0)
    return out
