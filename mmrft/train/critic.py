"""PPO's critic side of one RL step: values of a rollout batch, GAE advantages and returns, and the value update.

The math is in `mmrft.algorithms` (`outcome_token_rewards`, `gae`, `masked_whiten`, `value_loss`, `aggregate`);
this module runs it over a :class:`~mmrft.train.forward.SequenceBatch` with the same epochs x minibatches x
micro-batches schedule as the policy update.
"""

from __future__ import annotations

from collections import defaultdict

import torch

from mmrft.algorithms import aggregate, aggregation_denominators, gae, masked_whiten, outcome_token_rewards, value_loss
from mmrft.config import AlgorithmConfig, CriticConfig
from mmrft.train.dist import SINGLE, DistContext, all_sum, global_masked_whiten, sum_gradients
from mmrft.train.forward import SequenceBatch, completion_values
from mmrft.train.update import (aligned_over_ranks, average_step_metrics, group_rows, micro_batch_plan,
                                minibatch_schedule, optimizer_step, scores_in_micro_batches, stepped_parameters)


@torch.no_grad()
def batched_values(critic, seqs: SequenceBatch, micro: int, length_sorted: bool = True,
                   ctx: DistContext = SINGLE) -> torch.Tensor:
    """Critic values [N, T] of every completion, in row order, micro-batch by micro-batch."""
    return scores_in_micro_batches(lambda sub: completion_values(critic, sub), seqs, micro, length_sorted, ctx)


def gae_advantages(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    critic_cfg: CriticConfig,
    *,
    whiten: bool,
    kl: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    ctx: DistContext = SINGLE,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(advantages [N, T], returns [N, T], token rewards [N, T]) for outcome `rewards` [N]: the reward on the last
    completion token minus `kl_coef * kl` per token, then GAE with the critic's `values`; advantages whitened over
    the batch when `whiten`. Returns are the critic's regression targets (not whitened)."""
    token_rewards = outcome_token_rewards(rewards.to(values.dtype), mask, kl, kl_coef)
    advantages, returns = gae(token_rewards, values, mask, gamma=critic_cfg.gamma, lam=critic_cfg.lam)
    if whiten:  # over the whole batch: all ranks' tokens when data-parallel
        advantages = global_masked_whiten(advantages, mask, ctx) if ctx.enabled else masked_whiten(advantages, mask)
    return advantages, returns, token_rewards


def critic_update(
    critic,
    optimizer,
    scheduler,
    seqs: SequenceBatch,
    mask: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    algo: AlgorithmConfig,
    critic_cfg: CriticConfig,
    *,
    max_len: int,
    max_grad_norm: float,
    generator: torch.Generator | None = None,
    ctx: DistContext = SINGLE,
) -> dict[str, float]:
    """`algo.ppo_epochs` x `algo.minibatches` steps of the clipped value loss (aggregated like the policy loss,
    with whole-minibatch denominators); returns averaged metrics (`vf_loss`, `vf_clip_frac`, `vf_mse`, ...)."""
    sums: dict[str, float] = defaultdict(float)
    steps: dict[str, float] = defaultdict(float)
    count = local = 0
    params = stepped_parameters(optimizer)
    for mb in minibatch_schedule(seqs.num_groups, algo.ppo_epochs, algo.minibatches, generator,
                                 exact=ctx.enabled):
        mb_rows = group_rows(mb, seqs.n)
        num_tokens, num_seqs = all_sum(aggregation_denominators(mask[mb_rows]), ctx)
        if num_tokens == 0:
            continue
        optimizer.zero_grad(set_to_none=True)
        plan = micro_batch_plan(seqs, mb, algo.micro_batch_size, algo.length_sorted_micro_batches)
        for groups, sub in aligned_over_ranks(plan, seqs, ctx):
            if groups is None:  # a stand-in pass (FSDP): the same gathers and reductions, nothing added
                (completion_values(critic, sub).sum() * 0.0).backward()
                continue
            idx, t = group_rows(groups, seqs.n), sub.width
            m = mask[idx, :t]
            values = completion_values(critic, sub)
            loss_mat, metrics = value_loss(values, old_values[idx, :t], returns[idx, :t], m, critic_cfg.value_clip)
            loss = aggregate(loss_mat, m, algo.loss_agg_mode, num_tokens=num_tokens, num_seqs=num_seqs,
                             max_len=max_len)
            loss.backward()
            w = len(idx) / len(mb_rows)
            sums["vf_loss"] += float(loss.detach())
            for k, v in metrics.items():
                sums[k] += w * float(v)
        sum_gradients(params, ctx)
        grad_norm, stepped = optimizer_step(params, optimizer, scheduler, max_grad_norm)
        steps["grad_norm"] += grad_norm
        steps["skipped_updates"] += 0.0 if stepped else 1.0
        count += 1
        local += bool(mb)
    return average_step_metrics(sums, local, steps, count)
