"""The RL loop: sample prompts -> G completions each -> rewards -> advantages -> policy update.

It orchestrates; the math lives in `mmrft.algorithms`, scoring in `mmrft.rewards`, sampling in `mmrft.rollout`.
"""

from __future__ import annotations

import copy
import logging
import math
import time

import torch
from tqdm.auto import tqdm

from mmrft.algorithms import (
    AGGREGATION_MODES, get_advantage_estimator, get_policy_loss, k1, masked_mean, overlong_filter_mask,
)
from mmrft.config import Config, import_plugins
from mmrft.data.collate import encode_prompts
from mmrft.data.sources import load_samples
from mmrft.errors import ConfigError
from mmrft.eval.runner import EvalResult, evaluate
from mmrft.models.load import load_policy, resolve_device
from mmrft.models.value import load_critic
from mmrft.rollout.engine import SamplingParams
from mmrft.rollout.hf import HFRolloutEngine
from mmrft.track.metrics import Tracker
from mmrft.train.common import batches, make_optimizer, prepare_run_dir, save_model, seed_everything, set_threads
from mmrft.train.forward import build_sequences
from mmrft.train.sampling import StepSamples, sample_step
from mmrft.rewards.scoring import Scorer
from mmrft.train.critic import batched_values, critic_update, gae_advantages
from mmrft.train.update import batched_logprobs, policy_update, reference_context

log = logging.getLogger("mmrft")

# The advantage that needs a value model: per-token GAE from the critic (PPO), outside the outcome registry.
CRITIC_ESTIMATOR = "gae"


def check_algorithm(cfg: Config) -> None:
    """Fail before any work on names the registries do not know (the message lists the known ones)."""
    algo = cfg.algorithm
    for key, lookup in (("advantage", get_advantage_estimator), ("policy_loss", get_policy_loss)):
        if key == "advantage" and algo.advantage == CRITIC_ESTIMATOR:
            continue
        try:
            lookup(getattr(algo, key))
        except KeyError as e:
            raise ConfigError(f"algorithm.{key}: {e.args[0]}") from None
    if algo.loss_agg_mode not in AGGREGATION_MODES:
        raise ConfigError(f"algorithm.loss_agg_mode: {algo.loss_agg_mode!r} is not one of {', '.join(AGGREGATION_MODES)}")
    if cfg.rollout.group_size < 2 and algo.advantage in ("grpo", "dr_grpo", "rloo", "reinforce_pp_baseline"):
        raise ConfigError(f"rollout.group_size={cfg.rollout.group_size}: group baselines need at least 2 completions per prompt")


def _advantage_options(cfg: Config) -> dict:
    return {"normalize_std": cfg.algorithm.normalize_std} if cfg.algorithm.advantage == "grpo" else {}


def _rollout_metrics(samples: StepSamples) -> dict[str, float]:
    """What the policy did this step (every drawn completion), and what the group filter kept."""
    rollout, scores = samples.drawn, samples.drawn_scores
    lengths = rollout.lengths.float()
    out = {
        "reward/mean": float(scores.totals.mean()),
        "reward/std": float(scores.totals.std()) if len(scores.totals) > 1 else 0.0,
        "accuracy": float(scores.correct.mean()),
        "response_length/mean": float(lengths.mean()),
        "response_length/max": float(lengths.max()),
        "response_length/truncated": float(rollout.truncated.float().mean()),
        "reward/timeouts": float(scores.timeouts),
        "reward/overlong_penalty": float(samples.drawn_shaping.mean()),
        "filter/groups_drawn": float(samples.groups_drawn),
        "filter/groups_kept": float(samples.groups_kept),
        "filter/rounds": float(samples.rounds),
    }
    for name, vals in scores.components.items():
        finite = torch.tensor([v for v in vals if not math.isnan(v)])
        if len(finite):
            out[f"reward/{name}"] = float(finite.mean())
            out[f"reward/{name}/std"] = float(finite.std()) if len(finite) > 1 else 0.0
    return out


def train_rl(cfg: Config) -> dict:
    set_threads(cfg.trainer.threads)
    gen = seed_everything(cfg.trainer.seed)
    algo, ro = cfg.algorithm, cfg.rollout
    import_plugins(cfg)
    check_algorithm(cfg)
    train = load_samples(cfg.data.train, skip_bad_rows=cfg.data.skip_bad_rows, limit=cfg.data.train_limit)
    held_out = load_samples(cfg.data.eval, skip_bad_rows=cfg.data.skip_bad_rows, limit=cfg.data.eval_limit) if cfg.data.eval else []
    use_critic = algo.advantage == CRITIC_ESTIMATOR
    estimator = None if use_critic else get_advantage_estimator(algo.advantage)
    run_dir = prepare_run_dir(cfg)
    device = resolve_device()
    model, processor = load_policy(cfg.model, device)
    model.train()
    ref_model = None
    if algo.kl_coef > 0 and not cfg.model.lora.enabled:  # LoRA's reference is the base model, adapter disabled
        ref_model = copy.deepcopy(model).eval().requires_grad_(False)
    engine = HFRolloutEngine(model, processor)
    scorer = Scorer(cfg.rewards.weights, cfg.rewards.default, cfg.rewards.timeout_s, cfg.rewards.workers,
                    cfg.rewards.on_error)
    # one scheduler step per optimizer step: ppo_epochs x minibatches per RL step
    updates = cfg.trainer.steps * algo.ppo_epochs * algo.minibatches
    opt, sched = make_optimizer(model, cfg.trainer.lr, cfg.trainer.weight_decay, cfg.trainer.warmup_steps, updates,
                                cfg.trainer.lr_schedule)
    critic = critic_opt = critic_sched = None
    if use_critic:
        critic = load_critic(cfg, device)
        critic.train()
        critic_opt, critic_sched = make_optimizer(critic, cfg.critic.lr or cfg.trainer.lr, cfg.trainer.weight_decay,
                                                  cfg.trainer.warmup_steps, updates, cfg.trainer.lr_schedule)
    tracker = Tracker(run_dir)
    params = SamplingParams(ro.group_size, ro.max_new_tokens, ro.temperature, ro.top_p, ro.top_k)

    def run_eval(step: int) -> EvalResult | None:
        if not held_out:
            return None
        res = evaluate(model, processor, held_out, scorer, fmt=cfg.data.prompt_format, system=cfg.data.system_prompt,
                       batch_size=ro.eval_batch_size, max_new_tokens=ro.max_new_tokens)
        model.train()
        tracker.log(step, res.flat(), "eval")
        return res

    first = run_eval(0)
    batch_iter = batches(len(train), ro.prompts_per_step, gen)
    pad_id = processor.tokenizer.pad_token_id

    def draw():
        return [train[i] for i in next(batch_iter)]

    def encode(chunk):
        return encode_prompts(processor, chunk, cfg.data.prompt_format, cfg.data.system_prompt).to(device)

    bar = tqdm(range(1, cfg.trainer.steps + 1), desc="GRPO" if algo.name == "grpo" else algo.name,
               disable=not cfg.trainer.progress, dynamic_ncols=True)
    last = first
    try:
        for step in bar:
            t0 = time.time()
            timings: dict[str, float] = {}
            # 1-2. prompts -> G completions each -> rewards scored by program (DAPO: refill dropped groups)
            samples = sample_step(draw, encode, engine, params, scorer, algo, pad_id, timings)
            t2 = time.time()
            metrics = _rollout_metrics(samples)
            rollout = samples.train
            t3 = t2
            if rollout is not None:
                # 3. advantages from the rewards of the groups kept for training (reference log-probs only when
                #    a KL is used; old log-probs ahead of the update when the KL goes into the reward)
                mask = rollout.completion_mask.clone()
                if algo.mask_truncated:  # DAPO overlong filtering: truncated completions carry no gradient
                    mask = mask * overlong_filter_mask(rollout.truncated).unsqueeze(1)
                mask = mask.to(device)
                seqs = build_sequences(rollout.prompts.to(device), rollout.completion_ids, rollout.completion_mask,
                                       ro.group_size, engine.suppress)
                ref_logp = old_logp = reward_kl = None
                if algo.kl_coef > 0:
                    ref, ctx = reference_context(model, ref_model)
                    with ctx:
                        ref_logp = batched_logprobs(ref, seqs, ro.temperature, algo.micro_batch_size)
                    if algo.kl_in_reward:
                        old_logp = batched_logprobs(model, seqs, ro.temperature, algo.micro_batch_size)
                        reward_kl = k1(old_logp, ref_logp) * mask
                        metrics["kl/in_reward"] = float(masked_mean(reward_kl, mask))
                rewards = samples.train_rewards.to(device)
                if use_critic:
                    old_values = batched_values(critic, seqs, algo.micro_batch_size)
                    advantages, returns, _ = gae_advantages(
                        rewards, old_values, mask, cfg.critic, whiten=algo.normalize_std, kl=reward_kl,
                        kl_coef=algo.kl_coef)
                else:
                    if reward_kl is not None:  # sequence-level: the completion's summed KL leaves its reward
                        rewards = rewards - algo.kl_coef * reward_kl.sum(dim=1)
                    advantages = estimator(rewards, rollout.group_ids.to(device), **_advantage_options(cfg))
                t3 = time.time()
                # 4. policy update (and the critic's, for PPO)
                if mask.sum() > 0:
                    update = policy_update(
                        model, opt, sched, seqs, mask, advantages, algo,
                        temperature=ro.temperature, max_len=ro.max_new_tokens,
                        max_grad_norm=cfg.trainer.max_grad_norm, ref_logp=ref_logp, old_logp=old_logp,
                        generator=gen,
                    )
                    metrics.update({f"actor/{k}": v for k, v in update.items()})
                    if use_critic:
                        vf = critic_update(critic, critic_opt, critic_sched, seqs, mask, old_values, returns, algo,
                                           cfg.critic, max_len=ro.max_new_tokens,
                                           max_grad_norm=cfg.trainer.max_grad_norm, generator=gen)
                        metrics.update({f"critic/{k}": v for k, v in vf.items()})
                if use_critic:
                    metrics["critic/values_before"] = float(masked_mean(old_values, mask))
                    metrics["critic/returns"] = float(masked_mean(returns, mask))
                    advantages = advantages[mask.bool()]  # token advantages: stats over valid tokens
                metrics["advantage/mean"] = float(advantages.mean())
                metrics["advantage/std"] = float(advantages.std()) if len(advantages) > 1 else 0.0
                if algo.mask_truncated:
                    metrics["filter/truncated_masked"] = float(rollout.truncated.float().mean())
            t4 = time.time()
            metrics.update({
                "lr": sched.get_last_lr()[0], "time/rollout": timings.get("rollout", 0.0),
                "time/reward": timings.get("reward", 0.0), "time/prepare": t3 - t2, "time/update": t4 - t3,
                "time/step": t4 - t0,
            })
            tracker.log(step, metrics)
            bar.set_postfix(reward=f"{metrics['reward/mean']:.2f}", acc=f"{metrics['accuracy']:.2f}")
            if cfg.trainer.eval_every and step % cfg.trainer.eval_every == 0 and step < cfg.trainer.steps:
                run_eval(step)
        last = run_eval(cfg.trainer.steps)
        final = save_model(model, processor, run_dir / "final")
        if critic is not None:
            critic.save(run_dir / "critic", processor)
    finally:
        tracker.close()
        scorer.close()
    return {
        "checkpoint": str(final), "run_dir": str(run_dir),
        "eval_before": first.per_task if first else None, "eval_after": last.per_task if last else None,
    }
