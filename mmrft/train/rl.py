"""The RL loop: sample prompts -> G completions each -> rewards -> advantages -> policy update; with evaluation,
checkpoints that resume exactly, and a clean stop on SIGINT/SIGTERM.

It orchestrates; the math lives in `mmrft.algorithms`, scoring in `mmrft.rewards`, sampling in `mmrft.rollout`,
the update in `mmrft.train.learn`, checkpoints in `mmrft.train.state`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Optional

import torch
from tqdm.auto import tqdm

from mmrft.algorithms import AGGREGATION_MODES, filter_groups, get_advantage_estimator, get_policy_loss
from mmrft.config import Config, import_plugins
from mmrft.data.collate import encode_prompts, media_options
from mmrft.models.families import family_of
from mmrft.errors import ConfigError, MmrftError
from mmrft.eval.runner import EvalResult, check_benchmarks, evaluate, evaluate_benchmarks
from mmrft.models.load import load_policy, resolve_device
from mmrft.rewards.scoring import Scorer
from mmrft.rollout.engine import SamplingParams, check_rollout_engine
from mmrft.rollout.hf import HFRolloutEngine
from mmrft.track.metrics import Tracker, read_metrics, restore_metrics
from mmrft.track.rollouts import ROLLOUT_DIR, rollout_rows, write_rollouts
from mmrft.train.common import (batches, fit_to_model, load_data, prepare_run_dir, save_model, seed_everything,
                                set_threads)
from mmrft.train.dist import (DistContext, all_gather_list, any_rank, barrier, destroy, init_distributed,
                              reduce_metrics, shard)
from mmrft.train.fsdp import (FullCritic, FullStateOptimizer, FullWeights, Snapshot, check_fsdp, check_fsdp_data,
                              full_state_dict, gathered, unsharded_critic)
from mmrft.train.health import FlatRewardWatch
from mmrft.train.learn import CRITIC_ESTIMATOR, Learner, build_learner, learn_step
from mmrft.train.sampling import StepSamples, sample_step
from mmrft.train.signals import GracefulStop
from mmrft.train.state import latest_checkpoint, load_checkpoint, rng_state, save_checkpoint

log = logging.getLogger("mmrft")


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
        "filter/flat_groups": _flat_fraction(samples),
        "filter/groups_kept": float(samples.groups_kept),
        "filter/rounds": float(samples.rounds),
    }
    for name, vals in scores.components.items():
        finite = torch.tensor([v for v in vals if not math.isnan(v)])
        if len(finite):
            out[f"reward/{name}"] = float(finite.mean())
            out[f"reward/{name}/std"] = float(finite.std()) if len(finite) > 1 else 0.0
    return out


def _flat_fraction(samples: StepSamples) -> float:
    """The share of drawn groups whose completions all got the same reward (shaping included): their advantages are
    zero whatever the filter does."""
    _, stats = filter_groups(samples.drawn_scores.totals + samples.drawn_shaping, samples.drawn.group_ids)
    return 1.0 - stats.groups_kept / max(stats.groups_seen, 1)


def _dump_rollouts(run_dir: Path, step: int, samples: StepSamples, advantages: Optional[torch.Tensor], n: int) -> None:
    """Every completion drawn this step (`mmrft.track.rollouts`), with the advantage of those trained on."""
    trained = {}
    if samples.train is not None and advantages is not None:
        adv = advantages.detach().cpu().tolist()
        trained = {s.id: adv[g * n : (g + 1) * n] for g, s in enumerate(samples.train.prompts.samples)}
    drawn = samples.drawn
    rows = rollout_rows(step, drawn.prompts.samples, n, drawn.texts, samples.drawn_scores, drawn.truncated,
                        drawn.lengths, trained, run_dir / ROLLOUT_DIR / "images")
    write_rollouts(run_dir, step, rows)


def resume_checkpoint(cfg: Config) -> Optional[Path]:
    """The checkpoint `trainer.resume` points at (None: start fresh). `auto` resumes trainer.output_dir when it has
    a valid checkpoint; a run directory given explicitly must have one."""
    resume = cfg.trainer.resume
    if not resume:
        return None
    run = Path(cfg.trainer.output_dir if resume == "auto" else resume)
    ckpt = latest_checkpoint(run) if run.is_dir() else None
    if ckpt is None and resume != "auto":
        raise ConfigError(f"trainer.resume: {run} has no usable checkpoint (checkpoint-<step>/ with a valid manifest)")
    if ckpt is not None and run.resolve() != Path(cfg.trainer.output_dir).resolve():
        raise ConfigError(f"trainer.resume: {run} is not trainer.output_dir ({cfg.trainer.output_dir}); a resumed run "
                          "continues in its own directory: set trainer.output_dir to it")
    return ckpt


def _checkpoint_parts(learner: Learner, generator: torch.Generator, ctx: DistContext) -> dict:
    """What a checkpoint restores. Under FSDP the policy's weights are loaded before sharding (policy None here) and
    the optimizer goes through full, name-keyed state dicts."""
    if not ctx.fsdp:
        return {"policy": learner.model, "critic": learner.critic, "optimizers": learner.optimizers(),
                "generator": generator}
    optimizers = {"optimizer": FullStateOptimizer(learner.model, learner.optimizer), "scheduler": learner.scheduler}
    if learner.critic is not None:
        optimizers.update(critic_optimizer=FullStateOptimizer(learner.critic, learner.critic_optimizer),
                          critic_scheduler=learner.critic_scheduler)
    return {"policy": None, "critic": None, "generator": generator, "optimizers": optimizers}


def _saveable_parts(learner: Learner, generator: torch.Generator, ctx: DistContext) -> dict:
    """What a checkpoint writes; under FSDP every rank calls this (the full tensors are gathered to rank 0)."""
    parts = _checkpoint_parts(learner, generator, ctx)
    if ctx.enabled:  # every rank's random state, so a resumed run samples what the uninterrupted one would have
        parts["rank_rng"] = all_gather_list(rng_state(generator), ctx)[1:]
    if ctx.fsdp:
        parts["policy"] = FullWeights(learner.model, full_state_dict(learner.model))
        if learner.critic is not None:
            parts["critic"] = FullCritic(learner.critic, full_state_dict(learner.critic))
        parts["optimizers"] = {k: Snapshot(v.state_dict()) for k, v in parts["optimizers"].items()}
    return parts


def _eval_from_metrics(run_dir: Path, held_out: list, step: int) -> Optional[EvalResult]:
    """The held-out result logged at `step` by the interrupted run (for the before/after table of a resumed one)."""
    rows = [r for r in read_metrics(run_dir) if r.get("phase") == "eval" and r["step"] == step]
    if not rows or not held_out:
        return None
    counts: dict[str, int] = {}
    for s in held_out:
        counts[s.task] = counts.get(s.task, 0) + 1
    per_task = {t: {"accuracy": rows[-1].get(f"eval/{t}/accuracy") or 0.0, "reward": rows[-1].get(f"eval/{t}/reward") or 0.0,
                    "n": n} for t, n in sorted(counts.items())}
    return EvalResult(per_task)


class _Progress:
    """A tqdm bar on a terminal; otherwise (logs, CI, schedulers) a plain line every `every` steps."""

    def __init__(self, total: int, start: int, desc: str, enabled: bool, every: int) -> None:
        self.tty = enabled and sys.stderr.isatty()
        self.bar = tqdm(total=total, initial=start - 1, desc=desc, disable=not self.tty, dynamic_ncols=True)
        self.total, self.every, self.t0, self.done = total, max(every, 1), time.time(), 0
        self.enabled = enabled

    def update(self, step: int, metrics: dict[str, float]) -> None:
        self.done += 1
        shown = {"reward": f"{metrics['reward/mean']:.3f}", "acc": f"{metrics['accuracy']:.3f}",
                 "tok/s": f"{metrics.get('tokens/s', 0):.0f}"}
        if self.tty:
            self.bar.update(1)
            self.bar.set_postfix(shown)
        elif self.enabled and (step % self.every == 0 or step == self.total):
            eta = (time.time() - self.t0) / self.done * (self.total - step)
            log.info("step %d/%d  %s  ETA %dm%02ds", step, self.total, "  ".join(f"{k} {v}" for k, v in shown.items()),
                     eta // 60, eta % 60)

    def close(self) -> None:
        self.bar.close()


class _NoTracker:
    """What ranks other than 0 log to: nothing (rank 0 logs the step's metrics combined over ranks)."""

    def log(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


def train_rl(cfg: Config) -> dict:
    ctx = init_distributed(fsdp=cfg.trainer.fsdp)  # one process unless launched with torchrun
    if ctx.fsdp:
        check_fsdp(cfg)
    elif cfg.trainer.fsdp:
        log.warning("trainer.fsdp=true in a single process: nothing to shard, training unsharded")
    threads = cfg.trainer.threads
    if ctx.enabled and threads == 0 and not torch.cuda.is_available():  # share the CPU cores between the ranks
        threads = max(1, torch.get_num_threads() // int(os.environ.get("LOCAL_WORLD_SIZE", ctx.world_size)))
    set_threads(threads)
    gen = seed_everything(cfg.trainer.seed)
    algo, ro = cfg.algorithm, cfg.rollout
    import_plugins(cfg)
    check_algorithm(cfg)
    check_benchmarks(cfg)
    check_rollout_engine(ro)
    train, held_out = load_data(cfg)
    if ctx.fsdp:
        check_fsdp_data(train, f"data.train ({cfg.data.train})")
    ckpt = resume_checkpoint(cfg)
    run_dir = Path(cfg.trainer.output_dir)
    if ctx.is_main:  # the others wait until the directory and its config exist
        prepare_run_dir(cfg, resuming=ckpt is not None)
    barrier(ctx)
    device = resolve_device()
    model, processor = load_policy(cfg.model, device)
    train = fit_to_model(train, cfg, model, processor)
    held_out = fit_to_model(held_out, cfg, model, processor, "data.eval")
    model.train()
    learner = build_learner(cfg, model, device, fsdp=ctx.fsdp, checkpoint=ckpt)
    sampler = batches(len(train), ro.prompts_per_step, gen)
    start = 1
    if ckpt is not None:
        state = load_checkpoint(ckpt, _checkpoint_parts(learner, gen, ctx), rank=ctx.rank)
        sampler.load_state_dict(state["sampler"])
        start = state["step"] + 1
        if ctx.is_main:
            restore_metrics(run_dir, ckpt, state["step"])
        log.info("resuming %s from %s (step %d)", run_dir, ckpt.name, state["step"])
    if ro.engine == "vllm":  # one vLLM engine per rank, holding its own copy of the weights
        from mmrft.rollout.vllm import VLLMRolloutEngine

        engine = VLLMRolloutEngine.from_config(cfg, model, processor, rank=ctx.rank, gather=gathered)
    else:
        engine = HFRolloutEngine(model, processor, share_prefill=ro.share_prefill)
    scorer = Scorer(cfg.rewards.weights, cfg.rewards.default, cfg.rewards.timeout_s, cfg.rewards.workers,
                    cfg.rewards.on_error, imports=cfg.imports)
    tr = cfg.tracking
    tracker = _NoTracker() if not ctx.is_main else Tracker(
        run_dir, tensorboard=tr.tensorboard, purge_step=start if ckpt is not None else None, wandb=tr.wandb,
        mlflow=tr.mlflow, project=tr.project, run_name=tr.run_name, config=dataclasses.asdict(cfg))
    params = SamplingParams(ro.group_size, ro.max_new_tokens, ro.temperature, ro.top_p, ro.top_k)

    loaded: dict = {}  # benchmark items, read once

    def run_eval(step: int) -> EvalResult | None:
        with gathered(model):  # FSDP: full weights on every rank (collective), so rank 0 can generate alone
            return _evaluate(step) if ctx.is_main else None  # the others wait at the next collective

    def _evaluate(step: int) -> EvalResult | None:
        metrics = evaluate_benchmarks(cfg, model, processor, run_dir, step, loaded) if cfg.eval.benchmarks else {}
        res = None
        if held_out:
            res = evaluate(model, processor, held_out, scorer, fmt=cfg.data.prompt_format, media=media_options(cfg.data),
                           system=cfg.data.system_prompt, batch_size=ro.eval_batch_size,
                           max_new_tokens=ro.max_new_tokens)
            metrics.update(res.flat())
        model.train()
        if metrics:
            tracker.log(step, metrics, "eval")
        return res

    def draw():  # every rank draws the same global batch (same seed) and keeps its share of whole groups
        return shard([train[i] for i in next(sampler)], ctx)

    def encode(chunk):
        return encode_prompts(processor, chunk, cfg.data.prompt_format, cfg.data.system_prompt, media_options(cfg.data),
                              family_of(model).layout or None).to(device)

    def checkpoint(step: int) -> Optional[Path]:
        """Rank 0 writes it (the weights are the same on every rank, or gathered to rank 0 under FSDP)."""
        path = None
        parts = _saveable_parts(learner, gen, ctx)  # FSDP: gathered on every rank
        if ctx.is_main:
            state = {"sampler": sampler.state_dict(), "nonfinite_in_a_row": nonfinite}
            path = save_checkpoint(run_dir, step, parts, state, cfg.trainer.keep_checkpoints)
            log.info("checkpoint: %s", path)
        barrier(ctx)
        return path

    first = run_eval(0) if start == 1 else _eval_from_metrics(run_dir, held_out, 0)
    last, final, stopped, nonfinite = first, None, None, state.get("nonfinite_in_a_row", 0) if ckpt else 0
    flat_watch = FlatRewardWatch(cfg.trainer.flat_reward_warning_steps)
    progress = _Progress(cfg.trainer.steps, start, "GRPO" if algo.name == "grpo" else algo.name,
                         cfg.trainer.progress and ctx.is_main, cfg.trainer.log_every)
    try:
        with GracefulStop() as stop:
            for step in range(start, cfg.trainer.steps + 1):
                t0 = time.time()
                timings: dict[str, float] = {}
                # 1-2. prompts -> G completions each -> rewards scored by program (DAPO: refill dropped groups)
                # FSDP + transformers sampling: full weights for the whole phase (refill rounds included); vLLM
                # samples from its own copy
                with gathered(model) if ro.engine == "hf" else contextlib.nullcontext():
                    samples = sample_step(draw, encode, engine, params, scorer, algo, processor.tokenizer.pad_token_id,
                                          timings, ctx)
                metrics = _rollout_metrics(samples)
                advantages = None
                if any_rank(samples.train is not None, ctx):  # a rank that kept no group still takes part
                    # 3-4. advantages, policy (and critic) update
                    update, advantages = learn_step(cfg, learner, samples, engine.suppress, gen, device, ctx)
                    metrics.update(update)
                    if ro.engine == "vllm":  # the engine samples from its own copy: bring it up to date
                        t_sync = time.time()
                        engine.sync_weights(model)
                        metrics["time/weight_sync"] = time.time() - t_sync
                if cfg.tracking.rollouts_every and step % cfg.tracking.rollouts_every == 0 and ctx.is_main:
                    _dump_rollouts(run_dir, step, samples, advantages, ro.group_size)
                metrics.update({
                    "lr": learner.scheduler.get_last_lr()[0], "time/rollout": timings.get("rollout", 0.0),
                    "time/reward": timings.get("reward", 0.0), "time/step": time.time() - t0,
                    "tokens/s": float(samples.drawn.lengths.sum()) / max(timings.get("rollout", 0.0), 1e-9),
                })
                metrics = reduce_metrics(metrics, ctx)
                nonfinite = nonfinite + 1 if metrics.get("actor/skipped_updates", 0) > 0 else 0
                tracker.log(step, metrics)
                progress.update(step, metrics)
                if ctx.is_main:
                    flat_watch.update(step, metrics)
                if nonfinite:
                    log.warning("step %d: non-finite gradient, update skipped (%d in a row)", step, nonfinite)
                if nonfinite >= cfg.trainer.max_nonfinite_steps:
                    raise MmrftError(f"step {step}: {nonfinite} updates in a row skipped for non-finite gradients "
                                     f"(trainer.max_nonfinite_steps={cfg.trainer.max_nonfinite_steps}); stopping. "
                                     "Lower trainer.lr or check the rewards for NaN")
                if cfg.trainer.eval_every and step % cfg.trainer.eval_every == 0 and step < cfg.trainer.steps:
                    run_eval(step)
                stopping = any_rank(stop.requested is not None, ctx)  # all ranks stop at the same step
                if stopping or (cfg.trainer.checkpoint_every and step % cfg.trainer.checkpoint_every == 0):
                    checkpoint(step)
                if stopping:
                    stopped = step
                    log.warning("stopped at step %d (%s); continue with trainer.resume=%s", step,
                                stop.requested or "signal on another rank", run_dir)
                    break
        if stopped is None:
            last = run_eval(cfg.trainer.steps)
            if cfg.trainer.checkpoint_every and cfg.trainer.steps % cfg.trainer.checkpoint_every:
                checkpoint(cfg.trainer.steps)  # the end of the run is resumable too (e.g. to train longer)
            weights = FullWeights(model, full_state_dict(model)) if ctx.fsdp else model  # FSDP: collective
            critic = unsharded_critic(cfg, learner.critic) if learner.critic is not None else None  # likewise
            if ctx.is_main:
                final = save_model(weights, processor, run_dir / "final")
                if critic is not None:
                    critic.save(run_dir / "critic", processor)
            barrier(ctx)
    finally:
        progress.close()
        tracker.close()
        scorer.close()
        destroy(ctx)
    return {
        "checkpoint": str(final) if final else None, "run_dir": str(run_dir), "stopped_at": stopped,
        "eval_before": first.per_task if first else None,
        "eval_after": last.per_task if last and stopped is None else None,
    }
