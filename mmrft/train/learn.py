"""The learning half of an RL step, from the scored groups kept for training to updated weights, in three parts the
loop calls in turn:

- `prepare_batch`: the kept groups as training sequences with their loss mask, and what the update reads besides the
  policy: the reference log-probs (KL), the old log-probs when the KL enters the reward, the critic's values (PPO),
  the sampler's log-probs (rollout correction);
- `estimate_advantages`: the registered estimator (`algorithm.advantage`) over the whole batch (all ranks), or GAE
  with the critic's values; optionally whitened;
- `update_weights`: the policy update and, for PPO, the critic's.

The math is in `mmrft.algorithms`; the epochs x minibatches x micro-batches schedule in `mmrft.train.update`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from mmrft.algorithms import (ADVANTAGE_ESTIMATORS, AGGREGATIONS, POLICY_LOSSES, ROLLOUT_CORRECTIONS, k1, masked_mean,
                              options_for, overlong_filter_mask)
from mmrft.config import Config, algorithm_knobs
from mmrft.errors import ConfigError
from mmrft.models.value import load_critic
from mmrft.train.critic import batched_values, critic_update, gae_advantages
from mmrft.train.dist import SINGLE, DistContext, any_rank, global_advantages, global_masked_whiten
from mmrft.train.forward import SequenceBatch, build_sequences, shares_prompt_with_trajectories
from mmrft.train.fsdp import shard_model
from mmrft.train.optim import make_optimizer
from mmrft.train.sampling import StepSamples
from mmrft.train.state import load_critic_weights, load_weights
from mmrft.train.update import (batched_logprobs, policy_loss_options, policy_update, reference_context,
                                rollout_correction)


def advantage_options(cfg: Config) -> dict[str, Any]:
    """The keyword options `algorithm.advantage`'s estimator is called with: the `algorithm.*` and `critic.*`
    settings its signature names (GAE's gamma and lam), plus `algorithm.advantage_options` (KeyError for an option
    it does not take)."""
    algo = cfg.algorithm
    return options_for(ADVANTAGE_ESTIMATORS[algo.advantage], {**algorithm_knobs(algo), **vars(cfg.critic)},
                       algo.advantage_options, "algorithm.advantage_options")


def is_multi_turn(cfg: Config) -> bool:
    """Whether the run's rollouts are multi-turn trajectories (tools or an environment are configured)."""
    return bool(cfg.rollout.tools or cfg.rollout.environment)


def response_budget(cfg: Config) -> int:
    """The most tokens a response can have: `rollout.max_new_tokens`, or for multi-turn trajectories (tool turns
    included) `rollout.max_total_tokens`. The length DAPO's overlong shaping and Dr.GRPO's constant normaliser use."""
    return cfg.rollout.max_total_tokens if is_multi_turn(cfg) else cfg.rollout.max_new_tokens


def is_per_component(advantage: str) -> bool:
    """Whether the estimator named `advantage` normalises each reward on its own (GDPO): it then gets the rewards one
    column per entry of `rewards.weights` instead of their weighted sum."""
    return bool(ADVANTAGE_ESTIMATORS.info(advantage).get("per_component"))


def component_weights(cfg: Config) -> list[float]:
    """The weights of the reward columns a per-component estimator sees: `rewards.weights` in order (`task` alone
    when empty, as the scorer), then 1 for DAPO's overlong shaping when it is on."""
    weights = [float(w) for w in (cfg.rewards.weights or {"task": 1.0}).values()]
    return weights + [1.0] if cfg.algorithm.overlong_buffer > 0 else weights


def needs_critic(advantage: str) -> bool:
    """Whether the estimator named `advantage` is a value-model one (GAE): the run then trains a critic."""
    return bool(ADVANTAGE_ESTIMATORS.info(advantage).get("needs_critic"))


def check_algorithm(cfg: Config) -> None:
    """Fail before any work on names the registries do not know (the message lists the known ones), on options the
    chosen estimator or loss does not take, and on a group estimator with one completion per prompt."""
    algo = cfg.algorithm
    for key, registry in (("advantage", ADVANTAGE_ESTIMATORS), ("policy_loss", POLICY_LOSSES),
                          ("loss_agg_mode", AGGREGATIONS)):
        try:
            registry[getattr(algo, key)]
        except KeyError as e:
            raise ConfigError(f"algorithm.{key}: {e.args[0]}") from None
    try:
        ROLLOUT_CORRECTIONS[cfg.rollout.correction]
    except KeyError as e:
        raise ConfigError(f"rollout.correction: {e.args[0]}") from None
    try:
        advantage_options(cfg), policy_loss_options(algo), rollout_correction(cfg.rollout)
    except KeyError as e:
        raise ConfigError(e.args[0]) from None
    if is_per_component(algo.advantage) and algo.kl_in_reward:
        raise ConfigError(f"algorithm.kl_in_reward with algorithm.advantage={algo.advantage}: a per-component "
                          "estimator normalises each reward on its own; use the KL loss term (kl_in_reward=false)")
    if cfg.rollout.correction != "none" and cfg.rollout.augment:
        raise ConfigError("rollout.correction with rollout.augment: the augmented completions were sampled on a "
                          "perturbed image, so their log-ratio measures the perturbation, not the engine; use one")
    if cfg.rollout.group_size < 2 and ADVANTAGE_ESTIMATORS.info(algo.advantage).get("needs_groups"):
        raise ConfigError(f"rollout.group_size={cfg.rollout.group_size}: the {algo.advantage} estimator compares the "
                          "completions of a prompt and needs at least 2 per prompt")


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
    if needs_critic(algo.advantage):
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


@dataclass
class TrainBatch:
    """The groups kept this step, ready for the update. Rows are completions, prompt-major (n per group).

    `idle`: data-parallel, this rank kept no group while others did; it still takes part in every collective of
    the update with one drawn group whose mask is all zero (no loss, no gradient, no share of any statistic)."""

    seqs: SequenceBatch
    mask: torch.Tensor  # [N, T] the tokens that carry loss (overlong-filtered completions zeroed)
    rewards: torch.Tensor  # [N] task rewards + shaping, what the advantage estimator sees
    group_ids: torch.Tensor  # [N]
    truncated: torch.Tensor  # [N]
    idle: bool = False
    ref_logp: Optional[torch.Tensor] = None  # [N, T] under the reference policy (a KL is used)
    old_logp: Optional[torch.Tensor] = None  # [N, T] before the update (the KL enters the reward)
    reward_kl: Optional[torch.Tensor] = None  # [N, T] k1(old, ref) on the masked tokens (the KL enters the reward)
    values: Optional[torch.Tensor] = None  # [N, T] the critic's, before the update (PPO)
    sampler_logp: Optional[torch.Tensor] = None  # [N, T] the rollout engine's log-probs (rollout.correction)
    reward_components: Optional[torch.Tensor] = None  # [N, K] one column per reward (a per-component estimator)
    component_weights: Optional[list[float]] = None  # [K] their weights

    @property
    def rows(self) -> int:
        """Rows that count (0 on an idle rank)."""
        return 0 if self.idle else len(self.rewards)


def prepare_batch(cfg: Config, learner: Learner, samples: StepSamples, suppress: list[int], device,
                  ctx: DistContext = SINGLE) -> TrainBatch:
    """`samples.train` as a `TrainBatch` on `device` (this rank's share when data-parallel), with the reference
    log-probs when `algorithm.kl_coef > 0`, the old log-probs and the reward-side KL when `algorithm.kl_in_reward`,
    and the critic's values when the estimator needs a critic."""
    algo, ro = cfg.algorithm, cfg.rollout
    idle = samples.train is None
    rollout = samples.drawn.select_groups([0]) if idle else samples.train
    mask = rollout.policy_mask.clone()  # the policy's own tokens (tool turns of a trajectory carry no loss)
    if algo.mask_truncated:  # DAPO overlong filtering: truncated completions carry no gradient
        mask = mask * overlong_filter_mask(rollout.truncated).unsqueeze(1)
    if idle:
        mask.zero_()
    # multi-turn trajectories share the prompt only where the family allows it (Qwen-VL), else they are scored on the
    # expanded sequences; decided per run, so that every rank makes the same forward passes under FSDP
    share = ro.share_prompt_forward and (not is_multi_turn(cfg) or shares_prompt_with_trajectories(learner.model))
    seqs = build_sequences(rollout.prompts.to(device), rollout.completion_ids, rollout.completion_mask,
                           ro.group_size, suppress, share_prompt=share, response_media=rollout.media,
                           response_keys=rollout.token_keys)
    rewards = torch.zeros(mask.shape[0]) if idle else samples.train_rewards
    batch = TrainBatch(seqs, mask.to(device), rewards.to(device), rollout.group_ids.to(device), rollout.truncated,
                       idle)
    if is_per_component(algo.advantage):
        weights = component_weights(cfg)
        batch.reward_components = (torch.zeros(mask.shape[0], len(weights)) if idle else
                                   samples.train_components).to(device)
        batch.component_weights = weights
    if ro.correction != "none":
        if rollout.logprobs is None:
            raise RuntimeError(f"rollout.correction={ro.correction}: the {ro.engine} rollout engine returned no "
                               "log-probs of the sampled tokens")
        batch.sampler_logp = rollout.logprobs.to(device)
    micro, sort = algo.micro_batch_size, algo.length_sorted_micro_batches
    if algo.kl_coef > 0:
        ref, adapter_off = reference_context(learner.model, learner.ref_model)
        with adapter_off:
            batch.ref_logp = batched_logprobs(ref, seqs, ro.temperature, micro, sort, ctx)
        if algo.kl_in_reward:
            batch.old_logp = batched_logprobs(learner.model, seqs, ro.temperature, micro, sort, ctx)
            batch.reward_kl = k1(batch.old_logp, batch.ref_logp) * batch.mask
    if learner.critic is not None:
        batch.values = batched_values(learner.critic, seqs, micro, sort, ctx)
    return batch


def estimate_advantages(cfg: Config, batch: TrainBatch,
                        ctx: DistContext = SINGLE) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(advantages [N] or [N, T], returns [N, T] for the critic or None).

    Outcome estimators see every rank's rewards, group ids and masks (`global_advantages`); a KL in the reward is
    subtracted per completion (its summed k1) before them, and per token with GAE. With
    `algorithm.whiten_advantages` the result is whitened over the valid tokens of all ranks."""
    algo = cfg.algorithm
    estimator, options = ADVANTAGE_ESTIMATORS[algo.advantage], advantage_options(cfg)
    returns = None
    if batch.values is not None:
        advantages, returns = gae_advantages(estimator, batch.rewards, batch.values, batch.mask, batch.reward_kl,
                                             algo.kl_coef, options)
    else:
        rewards = batch.rewards
        if batch.reward_kl is not None:  # sequence-level: the completion's summed KL leaves its reward
            rewards = rewards - algo.kl_coef * batch.reward_kl.sum(dim=1)
        if batch.reward_components is not None:  # a per-component estimator (GDPO): each reward on its own
            rewards, options = batch.reward_components, {"weights": batch.component_weights, **options}
        keep = batch.rows  # an idle rank's stand-in group stays out of the batch statistics
        advantages = global_advantages(estimator, rewards[:keep], batch.group_ids[:keep], batch.mask[:keep], ctx,
                                       **options)
        if batch.idle:
            advantages = torch.zeros_like(batch.rewards)
    if algo.whiten_advantages:
        tokens = advantages if advantages.dim() == 2 else advantages.unsqueeze(1).expand_as(batch.mask)
        advantages = global_masked_whiten(tokens, batch.mask, ctx)
    return advantages, returns


def update_weights(cfg: Config, learner: Learner, batch: TrainBatch, advantages: torch.Tensor,
                   returns: Optional[torch.Tensor], generator: torch.Generator,
                   ctx: DistContext = SINGLE) -> dict[str, float]:
    """The policy update (`algorithm.ppo_epochs` x `algorithm.minibatches` optimizer steps) and, with a critic, the
    value update on `returns`. Every rank steps, or none (when no rank has a token to learn from)."""
    algo, ro = cfg.algorithm, cfg.rollout
    if not any_rank(bool(batch.mask.sum() > 0), ctx):
        return {}
    update = policy_update(
        learner.model, learner.optimizer, learner.scheduler, batch.seqs, batch.mask, advantages, algo,
        temperature=ro.temperature, max_len=response_budget(cfg), max_grad_norm=cfg.trainer.max_grad_norm,
        ref_logp=batch.ref_logp, old_logp=batch.old_logp, sampler_logp=batch.sampler_logp,
        correction=rollout_correction(ro), generator=generator, ctx=ctx)
    metrics = {f"actor/{k}": v for k, v in update.items()}
    if learner.critic is not None:
        vf = critic_update(learner.critic, learner.critic_optimizer, learner.critic_scheduler, batch.seqs, batch.mask,
                           batch.values, returns, algo, cfg.critic, max_len=response_budget(cfg),
                           max_grad_norm=cfg.trainer.max_grad_norm, generator=generator, ctx=ctx)
        metrics.update({f"critic/{k}": v for k, v in vf.items()})
    return metrics


def per_completion(advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One advantage per completion: itself for outcome advantages [N], the mean over valid tokens for [N, T]."""
    if advantages.dim() == 1:
        return advantages
    return (advantages * mask).sum(1) / mask.sum(1).clamp(min=1)


def batch_metrics(cfg: Config, batch: TrainBatch, advantages: torch.Tensor,
                  returns: Optional[torch.Tensor]) -> dict[str, float]:
    """What the learning half logs about the batch (nothing on an idle rank): advantage statistics (over valid
    tokens for per-token advantages), the reward-side KL, the critic's values and returns."""
    if batch.idle:
        return {}
    out: dict[str, float] = {}
    stats = advantages if advantages.dim() == 1 else advantages[batch.mask.bool()]
    out["advantage/mean"] = float(stats.mean()) if len(stats) else 0.0
    out["advantage/std"] = float(stats.std()) if len(stats) > 1 else 0.0
    if batch.reward_kl is not None:
        out["kl/in_reward"] = float(masked_mean(batch.reward_kl, batch.mask))
    if batch.values is not None:
        out["critic/values_before"] = float(masked_mean(batch.values, batch.mask))
        out["critic/returns"] = float(masked_mean(returns, batch.mask))
    if cfg.algorithm.mask_truncated:
        out["filter/truncated_masked"] = float(batch.truncated.float().mean())
    return out
