"""The RL loop: sample prompts -> G completions each -> rewards -> advantages -> policy update, with evaluation,
checkpoints that resume exactly, and a clean stop on SIGINT/SIGTERM.

It orchestrates; the run's set-up and plumbing (processes, FSDP, vLLM, logging, checkpoints) are in
`mmrft.train.run`, sampling and scoring in `mmrft.train.sampling`, the learning half in `mmrft.train.learn`, the
math in `mmrft.algorithms`.
"""

from __future__ import annotations

from mmrft.config import Config
from mmrft.run_lock import RunLock
from mmrft.train.run import RLRun
from mmrft.train.runtime import due
from mmrft.train.signals import GracefulStop
from mmrft.train.step_metrics import rollout_metrics


def train_rl(cfg: Config) -> dict:
    """Train `cfg.model` with `cfg.algorithm` on `cfg.data`; returns the run directory, the final checkpoint and
    the held-out results before and after (see `RLRun.result`). The run directory is locked for the whole run
    (`mmrft.run_lock`: one writer per directory; under torchrun rank 0 holds it)."""
    with RunLock(cfg.trainer.output_dir, "train"):
        return _train(cfg)


def _train(cfg: Config) -> dict:
    run = RLRun(cfg)  # processes, data, policy, optimizers, rollout engine, rewards, tracking; resumes a checkpoint
    try:
        with GracefulStop() as stop:
            run.evaluate(0)
            for step in range(run.start, cfg.trainer.steps + 1):
                samples = run.sample(step)  # 1. prompts -> G completions each -> rewards (DAPO: refill flat groups)
                metrics = rollout_metrics(samples)
                if run.any_rank(samples.train is not None):  # (a rank that kept no group still takes part)
                    batch = run.prepare(samples)  # 2. sequences and mask; reference log-probs; critic values
                    advantages, returns = run.advantages(batch)  # 3. over the whole batch (all ranks)
                    metrics.update(run.update(batch, advantages, returns))  # 4. policy (and critic) update
                run.log(step, samples, metrics)  # 5. metrics, progress, rollout dumps, run-health warnings
                if due(cfg.trainer.eval_every, step) and step < cfg.trainer.steps:
                    run.evaluate(step)
                # a signal or an alarm in health.stop; every rank stops at the same step
                reason = stop.requested or run.health.stop_reason
                stopping = run.any_rank(reason is not None)
                if stopping or due(cfg.trainer.checkpoint_every, step):
                    run.checkpoint(step)
                if stopping:
                    run.stop(step, reason)
                    break
            else:
                run.finish()  # final evaluation, end-of-run checkpoint, final model
    finally:
        run.close()
    return run.result()
