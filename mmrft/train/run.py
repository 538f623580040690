"""`RLRun`: everything one RL run holds, and the plumbing around its loop (`mmrft.train.rl.train_rl`).

Setting up (processes, seeds, checks, data, policy, optimizers, rollout engine, rewards, tracking, resuming), the
parts of a step that need the run's context (sampling under gathered FSDP weights, the learning calls with the
device and the process group, the vLLM weight sync), logging, evaluation, checkpoints and the final save live here,
so that the loop itself reads like the algorithm."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from pathlib import Path
from typing import Optional

import torch

from mmrft.config import Config, eval_split_prefix, eval_splits, import_plugins
from mmrft.data.collate import encode_prompts, media_options
from mmrft.errors import MmrftError
from mmrft.eval.records import keep_records
from mmrft.eval.runner import (EvalResult, check_benchmarks, evaluate_benchmarks, evaluate_held_out,
                               per_task_table, results_from_metrics)
from mmrft.models.families import family_of
from mmrft.models.load import load_policy, resolve_device
from mmrft.rewards.scoring import Scorer
from mmrft.rollout.engine import ROLLOUT_ENGINES, SamplingParams, check_rollout_engine
from mmrft.rollout.hf import HFRolloutEngine
from mmrft.rollout.multiturn import check_multi_turn, multi_turn, prompt_tools
from mmrft.track.metrics import NullTracker, Tracker, read_metrics, restore_metrics
from mmrft.train.data import fit_to_model, load_data
from mmrft.train.samplers import build_sampler
from mmrft.train.dist import all_gather_list, any_rank, barrier, destroy, init_distributed, reduce_metrics, shard
from mmrft.train.fsdp import check_fsdp, check_fsdp_data, full_weights, gathered, unsharded_critic
from mmrft.data.augment import anneal
from mmrft.train.augment_rollouts import check_augment, perturbed_samples
from mmrft.train.best import BestEvaluation, read_best, save_best
from mmrft.train.health import FlatRewardWatch, HealthMonitor
from mmrft.train.overlap import PolicyCopyEngine, SamplingAhead, check_overlap
from mmrft.train.learn import (TrainBatch, batch_metrics, build_learner, check_algorithm, estimate_advantages,
                               per_completion, prepare_batch, response_budget, update_weights)
from mmrft.train.progress import Progress
from mmrft.train.run_dir import prepare_run_dir, resume_checkpoint
from mmrft.train.run_parts import checkpoint_parts, saveable_parts
from mmrft.train.runtime import due, seed_everything, set_threads
from mmrft.train.sampling import StepSamples, sample_step
from mmrft.train.state import load_checkpoint, save_checkpoint, save_model
from mmrft.train.step_metrics import dump_rollouts

log = logging.getLogger("mmrft")


class RLRun:
    """One RL run: built from a config (resuming `trainer.resume`'s checkpoint), stepped by `train_rl`."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        ro, tr = cfg.rollout, cfg.trainer
        self.ctx = ctx = init_distributed(fsdp=tr.fsdp)  # one process unless launched with torchrun
        if ctx.fsdp:
            check_fsdp(cfg)
        elif tr.fsdp:
            log.warning("trainer.fsdp=true in a single process: nothing to shard, training unsharded")
        set_threads(tr.threads, ctx.world_size)
        self.generator = seed_everything(tr.seed)
        import_plugins(cfg)
        check_algorithm(cfg)
        check_benchmarks(cfg)
        check_rollout_engine(ro)
        check_multi_turn(cfg)
        check_overlap(cfg)
        train, held_out = load_data(cfg)
        if ctx.fsdp:
            check_fsdp_data(train, f"data.train ({cfg.data.train})")
        ckpt = resume_checkpoint(cfg)
        self.run_dir = Path(tr.output_dir)
        if ctx.is_main:  # the others wait until the directory and its config exist
            prepare_run_dir(cfg, resuming=ckpt is not None)
        barrier(ctx)
        self.device = resolve_device()
        self.model, self.processor = load_policy(cfg.model, self.device)
        self.train = fit_to_model(train, cfg, self.model, self.processor)
        self.splits = eval_splits(cfg)  # split name -> path; each split logs under eval_split_prefix
        self.held_out = {name: fit_to_model(samples, cfg, self.model, self.processor,
                                            "data.eval" if len(held_out) == 1 else f"data.eval.{name}")
                         for name, samples in held_out.items()}
        self.model.train()
        self.learner = build_learner(cfg, self.model, self.device, fsdp=ctx.fsdp, checkpoint=ckpt)
        self.sampler = build_sampler(cfg.data.sampler, cfg.data.sampler_options, self.train, ro.prompts_per_step,
                                     self.generator)
        self.index_of: dict[int, int] = {}  # id() of a drawn, not yet observed prompt -> its index, for the sampler
        self.start, self.nonfinite, self.resumed = 1, 0, ckpt is not None
        state: dict = {}
        if ckpt is not None:
            state = load_checkpoint(ckpt, checkpoint_parts(self.learner, self.generator, ctx), rank=ctx.rank)
            self.sampler.load_state_dict(state["sampler"])
            self.start, self.nonfinite = state["step"] + 1, state.get("nonfinite_in_a_row", 0)
            if ctx.is_main:
                restore_metrics(self.run_dir, ckpt, state["step"])
            log.info("resuming %s from %s (step %d)", self.run_dir, ckpt.name, state["step"])
        # one engine per rank; one that holds its own copy of the weights (vLLM) is synced after every update; with
        # tools or an environment, every row is a multi-turn trajectory (`mmrft.rollout.multiturn`)
        engine = ROLLOUT_ENGINES[ro.engine](cfg, self.model, self.processor, rank=ctx.rank, gather=gathered)
        self.engine_own_weights = bool(ROLLOUT_ENGINES.info(ro.engine).get("own_weights"))
        if ro.overlap and not self.engine_own_weights:  # sample from a copy, so the policy can update meanwhile
            engine = PolicyCopyEngine(self.model, self.processor, ro.share_prefill, ro.correction != "none",
                                      ro.decoder)
        self.engine = multi_turn(cfg, engine, self.model, self.processor)
        # rollout.overlap: the next step's batch sampled in the background, scored by a scorer of its own
        self.ahead = SamplingAhead(self.engine) if ro.overlap else None
        self.ahead_scorer = Scorer.from_config(cfg) if ro.overlap else None
        self.updates = self.staleness = 0  # updates this process made; how many the batch's sampler lagged behind
        self.tools = prompt_tools(cfg)  # the function-calling schemas the prompts offer (multi-turn runs)
        self.eval_engine = multi_turn(cfg, HFRolloutEngine(self.model, self.processor, decoder=ro.decoder), self.model,
                                       self.processor)
        self.scorer = Scorer.from_config(cfg)
        tk = cfg.tracking
        self.tracker = NullTracker() if not ctx.is_main else Tracker(
            self.run_dir, tensorboard=tk.tensorboard, purge_step=self.start if self.resumed else None,
            wandb=tk.wandb, mlflow=tk.mlflow, project=tk.project, run_name=tk.run_name, config=dataclasses.asdict(cfg))
        self.params = SamplingParams(ro.group_size, ro.max_new_tokens, ro.temperature, ro.top_p, ro.top_k)
        self.augment_n = check_augment(cfg)  # completions per group on perturbed images (0: no augmentation)
        self.step = 0
        self.progress = Progress(tr.steps, self.start, "GRPO" if cfg.algorithm.name == "grpo" else cfg.algorithm.name,
                                 tr.progress and ctx.is_main, tr.log_every)
        self.flat_watch = FlatRewardWatch(tr.flat_reward_warning_steps)
        # every rank sees the same combined metrics; rank 0 speaks (the stop is agreed through `any_rank`)
        self.health = HealthMonitor(cfg.health, verbose=ctx.is_main)
        if "health" in state:  # the alarms' streaks and baselines as the interrupted run left them
            self.health.load_state_dict(state["health"])
            self.flat_watch.streak = state.get("flat_reward_streak", 0)
        self.best = BestEvaluation()  # trainer.save_best (rank 0's record)
        if "best" in state:
            self.best.load_state_dict(state["best"])
        self.benchmark_items: dict = {}  # benchmark files, parsed once per run
        self.timings: dict[str, float] = {}
        self.trained: Optional[torch.Tensor] = None  # this step's advantage per trained completion, for the dumps
        self.before: Optional[dict[str, EvalResult]] = None  # split name -> result
        self.after: Optional[dict[str, EvalResult]] = None
        self.final: Optional[Path] = None
        self.stopped: Optional[int] = None

    # -- one step ------------------------------------------------------------------------------------------------

    def sample(self, step: int = 0) -> StepSamples:
        """This step's prompts (this rank's share of the same global draw), G completions each, scored; DAPO's
        refill rounds included; with `rollout.augment`, part of each group on perturbed images. An engine sampling
        with the policy itself holds its full (FSDP-gathered) weights for the whole phase."""
        self.timings = {"start": time.time()}
        self.step = step
        if self.ahead is not None:
            return self._sample_overlapped(step)
        with contextlib.nullcontext() if self.engine_own_weights else gathered(self.model):
            samples = self._sample_step(self._draw, self._encode, self.scorer, self.timings)
        self._observe(samples)
        return samples

    def _sample_step(self, draw, encode, scorer: Scorer, timings: dict) -> StepSamples:
        return sample_step(draw, encode, self.engine, self.params, scorer, self.cfg.algorithm,
                           self.processor.tokenizer.pad_token_id, timings, self.ctx, response_budget(self.cfg),
                           self._augment if self.augment_n else None, self.augment_n)

    def _sample_overlapped(self, step: int) -> StepSamples:
        """`rollout.overlap` (`mmrft.train.overlap`): this step's batch, sampled while the last step updated (or now,
        on-policy: the first step, the step after a checkpoint); then the next step's, started in the background
        from the current weights, its prompts drawn and encoded here."""
        ahead, tr = self.ahead, self.cfg.trainer
        got = ahead.take(self.timings)
        if got is None:
            ahead.sync(self.model, self.updates)
            got = self._sample_step(self._draw, self._encode, self.scorer, self.timings), self.updates
        samples, version = got
        self.staleness = self.updates - version
        self._observe(samples)
        if step < tr.steps and not due(tr.checkpoint_every, step):
            ahead.sync(self.model, self.updates)
            chunk = self._draw()
            prompts = self._encode(chunk)
            ahead.start(lambda timings: self._sample_step(lambda: chunk, lambda _: prompts, self.ahead_scorer,
                                                          timings))
        return samples

    def _observe(self, samples: StepSamples) -> None:
        """Tell the prompt sampler how each prompt sampled this step did (share of correct completions), gathered
        over ranks in rank order so that every rank's sampler sees the same."""
        n = samples.drawn.n
        correct = samples.drawn_scores.correct.view(-1, n).mean(dim=1).tolist()
        mine = [(self.index_of[id(s)], p) for s, p in zip(samples.drawn.prompts.samples, correct)]
        for s in samples.drawn.prompts.samples:
            self.index_of.pop(id(s), None)
        pairs = [pair for part in all_gather_list(mine, self.ctx) for pair in part]
        self.sampler.observe([i for i, _ in pairs], [p for _, p in pairs])

    def any_rank(self, flag: bool) -> bool:
        """True on every rank when `flag` is true on one (a group kept, a stop signal received)."""
        return any_rank(flag, self.ctx)

    def prepare(self, samples: StepSamples) -> TrainBatch:
        t0 = time.time()
        batch = prepare_batch(self.cfg, self.learner, samples, self.engine.suppress, self.device, self.ctx)
        self.timings["prepare"] = time.time() - t0
        return batch

    def advantages(self, batch: TrainBatch) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        t0 = time.time()
        out = estimate_advantages(self.cfg, batch, self.ctx)
        self.timings["prepare"] += time.time() - t0
        return out

    def update(self, batch: TrainBatch, advantages: torch.Tensor, returns: Optional[torch.Tensor]) -> dict[str, float]:
        """The weight update, the batch's metrics, and an engine holding its own weights (vLLM) brought up to date."""
        t0 = time.time()
        metrics = update_weights(self.cfg, self.learner, batch, advantages, returns, self.generator, self.ctx)
        metrics.update(batch_metrics(self.cfg, batch, advantages, returns))
        metrics["time/prepare"], metrics["time/update"] = self.timings["prepare"], time.time() - t0
        self.updates += 1
        if self.engine_own_weights and self.ahead is None:  # its own copy (with overlap: synced as it starts)
            t_sync = time.time()
            self.engine.sync_weights(self.model)
            metrics["time/weight_sync"] = time.time() - t_sync
        self.trained = None if batch.idle else per_completion(advantages, batch.mask)
        return metrics

    def log(self, step: int, samples: StepSamples, metrics: dict[str, float]) -> None:
        """One row of metrics for the step (combined over ranks), the progress line, the rollout dump, run-health
        warnings; stops the run after too many skipped (non-finite) updates in a row."""
        cfg = self.cfg
        if cfg.tracking.rollouts_every and step % cfg.tracking.rollouts_every == 0 and self.ctx.is_main:
            dump_rollouts(self.run_dir, step, samples, self.trained)
        self.trained = None
        rollout_time = self.timings.get("rollout", 0.0)
        metrics.update({
            "lr": self.learner.scheduler.get_last_lr()[0], "time/rollout": rollout_time,
            "time/reward": self.timings.get("reward", 0.0), "time/step": time.time() - self.timings["start"],
            "tokens/s": float(samples.drawn.lengths.sum()) / max(rollout_time, 1e-9),
        })
        if self.ahead is not None:  # updates between the sampler's weights and the policy this batch updated
            metrics.update({"rollout/staleness": float(self.staleness),
                            "time/rollout_wait": self.timings.get("rollout_wait", 0.0)})
        if self.augment_n:
            metrics["augment/level"] = self.augment_level()  # the perturbation's annealed strength this step
        metrics = reduce_metrics(metrics, self.ctx)
        metrics.update(self.sampler.metrics())  # the same on every rank (every rank's sampler sees the same)
        metrics.update(self.health.update(step, metrics))  # health/<alarm>: 1 while its condition holds
        self.tracker.log(step, metrics)
        self.progress.update(step, {"reward": f"{metrics['reward/mean']:.3f}", "acc": f"{metrics['accuracy']:.3f}",
                                    "tok/s": f"{metrics.get('tokens/s', 0):.0f}"})
        if self.ctx.is_main:
            self.flat_watch.update(step, metrics)
        self.nonfinite = self.nonfinite + 1 if metrics.get("actor/skipped_updates", 0) > 0 else 0
        if self.nonfinite:
            log.warning("step %d: non-finite gradient, update skipped (%d in a row)", step, self.nonfinite)
        if self.nonfinite >= cfg.trainer.max_nonfinite_steps:
            raise MmrftError(f"step {step}: {self.nonfinite} updates in a row skipped for non-finite gradients "
                             f"(trainer.max_nonfinite_steps={cfg.trainer.max_nonfinite_steps}); stopping. "
                             "Lower trainer.lr or check the rewards for NaN")

    def _draw(self) -> list:
        """Every rank draws the same global batch (same seed) and keeps its share of whole groups."""
        indices = next(self.sampler)
        drawn = [self.train[i] for i in indices]  # a lazy dataset makes a new Sample each time one is read
        mine = shard(drawn, self.ctx)
        kept = {id(s) for s in mine}
        self.index_of.update((id(s), i) for s, i in zip(drawn, indices) if id(s) in kept)
        return mine

    def _augment(self, chunk: list) -> list:
        """`chunk` with perturbed images at this step's annealed strength (`mmrft.train.augment_rollouts`)."""
        ro = self.cfg.rollout
        return perturbed_samples(chunk, ro.augment, ro.augment_options, self.augment_level(), self.cfg.trainer.seed,
                                 self.step)

    def augment_level(self) -> float:
        ro = self.cfg.rollout
        return anneal(self.step, self.cfg.trainer.steps, ro.augment_anneal, ro.augment_anneal_coef,
                      ro.augment_anneal_mid)

    def _encode(self, chunk: list):
        d = self.cfg.data
        return encode_prompts(self.processor, chunk, d.prompt_format, d.system_prompt, media_options(d),
                              family_of(self.model).layout or None, self.tools).to(self.device)

    # -- evaluation, checkpoints, the end ----------------------------------------------------------------------

    def evaluate(self, step: int) -> Optional[dict[str, EvalResult]]:
        """Greedy evaluation on each held-out split and `eval.benchmarks` (rank 0; under FSDP every rank gathers
        the full weights first, a collective); logged under phase "eval", each split under its prefix, its answers
        item by item under RUN/eval/held_out (`mmrft.eval.records`). Returns split name -> result (None without
        held-out data, and on the other ranks). Step 0 is the start: a resumed run reads it back from its files."""
        if step == 0 and self.resumed:
            rows = [r for r in read_metrics(self.run_dir) if r.get("phase") == "eval" and r["step"] == 0]
            self.before = results_from_metrics(rows, self.held_out, self.splits, self.run_dir)
            return self.before
        with gathered(self.model):
            result = self._evaluate(step) if self.ctx.is_main else None  # the others wait at the next collective
        if step == 0:
            self.before = result
        if self.cfg.trainer.save_best:
            self._keep_if_best(step, result)
        return result

    def _keep_if_best(self, step: int, result: Optional[dict[str, EvalResult]]) -> None:
        """RUN/best: the model of the best evaluation of the first held-out split so far (`mmrft.train.best`)."""
        accuracy = next(iter(result.values())).accuracy if result else None  # rank 0 evaluates
        if not self.any_rank(self.best.improves(accuracy)):
            return
        weights = full_weights(self.model, self.ctx.fsdp)  # collective under FSDP
        if self.ctx.is_main:
            self.best.record(step, accuracy)
            save_best(weights, self.processor, self.run_dir, self.best)
        barrier(self.ctx)

    def _evaluate(self, step: int) -> Optional[dict[str, EvalResult]]:
        cfg = self.cfg
        metrics = (evaluate_benchmarks(cfg, self.model, self.processor, self.run_dir, step, self.benchmark_items)
                   if cfg.eval.benchmarks else {})
        results: dict[str, EvalResult] = {}
        for name, samples in self.held_out.items():
            if not samples:
                continue
            res = evaluate_held_out(cfg, self.model, self.processor, samples, self.scorer, self.eval_engine)
            keep_records(cfg, self.run_dir, step, name, self.splits, res.records)
            prefix = eval_split_prefix(name, self.splits)
            metrics.update(res.flat(prefix))
            if not results:  # the first split is the one the held-out alarm watches
                self.health.update_eval(step, metrics.get(f"{prefix}/accuracy"))
            results[name] = res
        self.model.train()
        if metrics:
            self.tracker.log(step, metrics, "eval")
        return results or None

    def checkpoint(self, step: int) -> Optional[Path]:
        """A resumable checkpoint; rank 0 writes it (the weights are the same on every rank, or gathered to rank 0
        under FSDP)."""
        path = None
        if self.ahead is not None:  # a stop: the batch sampled ahead is dropped (periodic checkpoints sample none)
            self.ahead.discard()
        parts = saveable_parts(self.learner, self.generator, self.ctx)  # FSDP: gathered on every rank
        if self.ctx.is_main:
            state = {"sampler": self.sampler.state_dict(), "nonfinite_in_a_row": self.nonfinite,
                     "health": self.health.state_dict(), "flat_reward_streak": self.flat_watch.streak,
                     "best": self.best.state_dict()}
            path = save_checkpoint(self.run_dir, step, parts, state, self.cfg.trainer.keep_checkpoints)
            log.info("checkpoint: %s", path)
        barrier(self.ctx)
        return path

    def stop(self, step: int, reason: Optional[str]) -> None:
        """A stop signal reached a rank: this step's checkpoint is written already; say how to continue."""
        self.stopped = step
        log.warning("stopped at step %d (%s); continue with trainer.resume=%s", step,
                    reason or "signal on another rank", self.run_dir)

    def finish(self) -> None:
        """After the last step: the final evaluation, a checkpoint of the end (so the run can be continued), and
        the final model (merged LoRA) and critic for `from_pretrained`."""
        cfg, ctx = self.cfg, self.ctx
        self.after = self.evaluate(cfg.trainer.steps)
        if cfg.trainer.checkpoint_every and cfg.trainer.steps % cfg.trainer.checkpoint_every:
            self.checkpoint(cfg.trainer.steps)
        weights = full_weights(self.model, ctx.fsdp)  # collective under FSDP
        critic = unsharded_critic(cfg, self.learner.critic) if self.learner.critic is not None else None  # likewise
        if ctx.is_main:
            self.final = save_model(weights, self.processor, self.run_dir / "final")
            if critic is not None:
                critic.save(self.run_dir / "critic", self.processor)
        barrier(ctx)

    def close(self) -> None:
        if self.ahead is not None:
            self.ahead.close()
            self.ahead_scorer.close()
        self.progress.close()
        self.tracker.close()
        self.scorer.close()
        destroy(self.ctx)

    def result(self) -> dict:
        """The run's outcome. `eval_before` / `eval_after`: task -> {accuracy, reward, n} of a single held-out
        split; with several splits, keyed `<split>/<task>` (one table with every split's rows). `eval_splits`:
        split name -> {"before", "after"}, each task -> {accuracy, reward, n} or None. `best`: RUN/best's step,
        accuracy and path (`trainer.save_best`), else None."""
        after = self.after if self.stopped is None else None
        return {
            "checkpoint": str(self.final) if self.final else None, "run_dir": str(self.run_dir),
            "stopped_at": self.stopped, "health": self.health.state(),
            "eval_before": per_task_table(self.before, self.held_out),
            "eval_after": per_task_table(after, self.held_out),
            "eval_splits": {name: {"before": self.before[name].per_task if self.before and name in self.before
                                   else None,
                                   "after": after[name].per_task if after and name in after else None}
                            for name in self.held_out},
            "best": read_best(self.run_dir) if self.cfg.trainer.save_best else None,
        }


__all__ = ["RLRun", "check_algorithm"]
