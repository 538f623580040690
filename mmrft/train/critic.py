"""PPO's critic side of one RL step: values of a rollout batch, GAE advantages and returns, and the value update.

The math is in `mmrft.algorithms` (`outcome_token_rewards`, `gae`, `value_loss`, `aggregate`);
this module runs it over a :class:`~mmrft.train.forward.SequenceBatch` with the same epochs x minibatches x
micro-batches schedule as the policy update.
"""

from __future__ import annotations

import torch

from mmrft.algorithms import aggregate, outcome_token_rewards, value_loss
from mmrft.config import AlgorithmConfig, CriticConfig
from mmrft.train.dist import SINGLE, DistContext
from mmrft.train.forward import SequenceBatch, completion_values
from mmrft.train.update import MicroBatch, minibatch_steps, scores_in_micro_batches


@torch.no_grad()
def batched_values(critic, seqs: SequenceBatch, micro: int, length_sorted: bool = True,
                   ctx: DistContext = SINGLE) -> torch.Tensor:
    """Critic values [N, T] of every completion, in row order, micro-batch by micro-batch."""
    return scores_in_micro_batches(lambda sub: completion_values(critic, sub), seqs, micro, length_sorted, ctx)


def gae_advantages(estimator, rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor,
                   kl: torch.Tensor | None = None, kl_coef: float = 0.0,
                   options: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages [N, T], returns [N, T]) for outcome `rewards` [N]: the reward on the last completion token minus
    `kl_coef * kl` per token (`outcome_token_rewards`), then the critic estimator (`gae`, with `options` such as
    gamma and lam) on the critic's `values`. Returns are the critic's regression targets."""
    token_rewards = outcome_token_rewards(rewards.to(values.dtype), mask, kl, kl_coef)
    return estimator(token_rewards, values, mask, **(options or {}))


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

    def loss_of(mb: MicroBatch) -> tuple[torch.Tensor, dict[str, float]]:
        idx, t = mb.rows, mb.seqs.width
        values = completion_values(critic, mb.seqs)
        loss_mat, metrics = value_loss(values, old_values[idx, :t], returns[idx, :t], mb.mask, critic_cfg.value_clip)
        loss = aggregate(loss_mat, mb.mask, algo.loss_agg_mode, num_tokens=mb.num_tokens, num_seqs=mb.num_seqs,
                         max_len=max_len)
        return loss, metrics

    return minibatch_steps(optimizer, scheduler, seqs, mask, algo, max_grad_norm, loss_of,
                           lambda sub: completion_values(critic, sub), "vf_loss", generator, ctx)
