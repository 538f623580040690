"""The learning half of an RL step: from the scored groups kept for training to updated weights.

Reference and old log-probs (only when a KL is used), the critic's values and GAE for PPO, or an outcome estimator
otherwise; then the policy update and, for PPO, the critic's. The math is in `mmrft.algorithms`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from mmrft.algorithms import get_advantage_estimator, k1, masked_mean, overlong_filter_mask
from mmrft.config import Config
from mmrft.models.value import load_critic
from mmrft.train.common import make_optimizer
from mmrft.train.critic import batched_values, critic_update, gae_advantages
from mmrft.train.dist import SINGLE, DistContext, any_rank, global_advantages
from mmrft.train.fsdp import shard_model
from mmrft.train.forward import build_sequences
from mmrft.train.sampling import StepSamples
from mmrft.train.state import load_critic_weights, load_weights
from mmrft.train.update import batched_logprobs, policy_update, reference_context

# The advantage that needs a value model: per-token GAE from the critic (PPO), outside the outcome registry.
CRITIC_ESTIMATOR = "gae"


@dataclass
class Learner:
    """What the update changes or reads: the policy and its optimizer, the frozen reference (None for LoRA, whose
    reference is the base model with the adapter disabled, or when no KL is used), PPO's critic."""

    model: Any
    optimizer: Any
    scheduler: Any
    ref_model: Any = None
    critic: Any = None
    critic_optimizer: Any = None
    critic_scheduler: Any = None

    def optimizers(self) -> dict[str, Any]:
        """Everything with a state_dict that a checkpoint must hold."""
        out = {"optimizer": self.optimizer, "scheduler": self.scheduler}
        if self.critic is not None:
            out.update(critic_optimizer=self.critic_optimizer, critic_scheduler=self.critic_scheduler)
        return out


def build_learner(cfg: Config, model, device, fsdp: bool = False, checkpoint: Optional[Path] = None) -> Learner:
    """The optimizer(s) and the models the update reads. `fsdp`: shard the policy, the reference and the critic
    (`mmrft.train.fsdp`) before the optimizers are made over the shards; the full tensors of `checkpoint` (a run's
    `checkpoint-<step>/`, when resuming) go into the policy and the critic here, after the reference is copied from
    the starting weights and before sharding. Unsharded, `load_checkpoint` restores them afterwards."""
    algo = cfg.algorithm
    # one scheduler step per optimizer step: ppo_epochs x minibatches per RL step
    updates = cfg.trainer.steps * algo.ppo_epochs * algo.minibatches
    ref = None
    if algo.kl_coef > 0 and not cfg.model.lora.enabled:
        ref = copy.deepcopy(model).eval().requires_grad_(False)
    if fsdp:
        if checkpoint is not None:
            load_weights(model, checkpoint / "policy")
        shard_model(model)
        if ref is not None:
            shard_model(ref)
    opt, sched = make_optimizer(model, cfg.trainer.lr, cfg.trainer.weight_decay, cfg.trainer.warmup_steps, updates,
                                cfg.trainer.lr_schedule)
    learner = Learner(model, opt, sched, ref_model=ref)
    if algo.advantage == CRITIC_ESTIMATOR:
        learner.critic = load_critic(cfg, device)
        learner.critic.train()
        if fsdp:
            if checkpoint is not None:
                load_critic_weights(learner.critic, checkpoint / "critic")
            shard_model(learner.critic)
        learner.critic_optimizer, learner.critic_scheduler = make_optimizer(
            learner.critic, cfg.critic.lr or cfg.trainer.lr, cfg.trainer.weight_decay, cfg.trainer.warmup_steps,
            updates, cfg.trainer.lr_schedule)
    return learner


def _advantage_options(cfg: Config) -> dict:
    return {"normalize_std": cfg.algorithm.normalize_std} if cfg.algorithm.advantage == "grpo" else {}


def learn_step(
    cfg: Config, learner: Learner, samples: StepSamples, suppress: list[int], generator: torch.Generator, device,
    ctx: DistContext = SINGLE,
) -> tuple[dict[str, float], Optional[torch.Tensor]]:
    """Update on `samples.train` (this rank's share when data-parallel); returns (metrics, one advantage per
    trained completion).

    Data-parallel, a rank whose groups were all filtered out (`samples.train` None) while other ranks kept some
    still takes part in every collective of the update: it runs one drawn group with its completion mask zeroed
    (no loss, no gradient, no share of any denominator) and returns no metrics and no advantages."""
    algo, ro, model = cfg.algorithm, cfg.rollout, learner.model
    idle = samples.train is None
    rollout = samples.drawn.select_groups([0]) if idle else samples.train
    metrics: dict[str, float] = {}
    t0 = time.time()
    mask = rollout.completion_mask.clone()
    if algo.mask_truncated:  # DAPO overlong filtering: truncated completions carry no gradient
        mask = mask * overlong_filter_mask(rollout.truncated).unsqueeze(1)
    if idle:
        mask.zero_()
    mask = mask.to(device)
    seqs = build_sequences(rollout.prompts.to(device), rollout.completion_ids, rollout.completion_mask,
                           ro.group_size, suppress, share_prompt=ro.share_prompt_forward)
    # reference log-probs only when a KL is used; old log-probs ahead of the update when the KL enters the reward
    ref_logp = old_logp = reward_kl = None
    if algo.kl_coef > 0:
        ref, adapter_off = reference_context(model, learner.ref_model)
        with adapter_off:
            ref_logp = batched_logprobs(ref, seqs, ro.temperature, algo.micro_batch_size,
                                        algo.length_sorted_micro_batches, ctx)
        if algo.kl_in_reward:
            old_logp = batched_logprobs(model, seqs, ro.temperature, algo.micro_batch_size,
                                        algo.length_sorted_micro_batches, ctx)
            reward_kl = k1(old_logp, ref_logp) * mask
            metrics["kl/in_reward"] = float(masked_mean(reward_kl, mask))
    rewards = torch.zeros(mask.shape[0]) if idle else samples.train_rewards
    rewards = rewards.to(device)
    if learner.critic is not None:
        old_values = batched_values(learner.critic, seqs, algo.micro_batch_size, algo.length_sorted_micro_batches,
                                    ctx)
        advantages, returns, _ = gae_advantages(rewards, old_values, mask, cfg.critic, whiten=algo.normalize_std,
                                                kl=reward_kl, kl_coef=algo.kl_coef, ctx=ctx)
    else:
        if reward_kl is not None:  # sequence-level: the completion's summed KL leaves its reward
            rewards = rewards - algo.kl_coef * reward_kl.sum(dim=1)
        estimator = get_advantage_estimator(algo.advantage)
        keep = 0 if idle else len(rewards)  # an idle rank's stand-in group stays out of batch statistics
        advantages = global_advantages(estimator, rewards[:keep], rollout.group_ids[:keep].to(device), ctx,
                                       **_advantage_options(cfg))
        if idle:
            advantages = torch.zeros_like(rewards)
    t1 = time.time()
    if any_rank(bool(mask.sum() > 0), ctx):  # every rank steps, or none
        update = policy_update(
            model, learner.optimizer, learner.scheduler, seqs, mask, advantages, algo, temperature=ro.temperature,
            max_len=ro.max_new_tokens, max_grad_norm=cfg.trainer.max_grad_norm, ref_logp=ref_logp,
            old_logp=old_logp, generator=generator, ctx=ctx)
        metrics.update({f"actor/{k}": v for k, v in update.items()})
        if learner.critic is not None:
            vf = critic_update(learner.critic, learner.critic_optimizer, learner.critic_scheduler, seqs, mask,
                               old_values, returns, algo, cfg.critic, max_len=ro.max_new_tokens,
                               max_grad_norm=cfg.trainer.max_grad_norm, generator=generator, ctx=ctx)
            metrics.update({f"critic/{k}": v for k, v in vf.items()})
    if idle:
        return {"time/prepare": t1 - t0, "time/update": time.time() - t1}, None
    per_completion = advantages if advantages.dim() == 1 else (advantages * mask).sum(1) / mask.sum(1).clamp(min=1)
    stats = advantages
    if learner.critic is not None:
        metrics["critic/values_before"] = float(masked_mean(old_values, mask))
        metrics["critic/returns"] = float(masked_mean(returns, mask))
        stats = advantages[mask.bool()]  # token advantages: stats over valid tokens
    metrics["advantage/mean"] = float(stats.mean())
    metrics["advantage/std"] = float(stats.std()) if len(stats) > 1 else 0.0
    if algo.mask_truncated:
        metrics["filter/truncated_masked"] = float(rollout.truncated.float().mean())
    metrics["time/prepare"] = t1 - t0
    metrics["time/update"] = time.time() - t1
    return metrics, per_completion
