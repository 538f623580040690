"""Supervised cold start: teach the answer format (and some skill) on the same data layer before RL.

Targets are `<think>{rationale}</think><answer>{answer}</answer>`, or a sample's supervised `trajectory` (assistant
turns that call tools, tool turns with their images, the answer); the loss is the mean negative log-likelihood of
the assistant's tokens only (the prompt, image and tool tokens are context).
"""

from __future__ import annotations

import logging
import time

import torch

from mmrft.config import Config, eval_split_prefix, eval_splits, import_plugins
from mmrft.data.collate import encode_prompts, encode_targets, media_options
from mmrft.data.turns import encode_trajectory
from mmrft.models.families import family_of
from mmrft.eval.records import keep_records
from mmrft.eval.runner import evaluate_held_out
from mmrft.models.load import load_policy, media_token_ids, resolve_device
from mmrft.train.data import fit_to_model, load_data
from mmrft.train.samplers import PromptSampler
from mmrft.train.optim import make_optimizer
from mmrft.train.progress import Progress
from mmrft.train.run_dir import prepare_run_dir
from mmrft.train.runtime import seed_everything, set_threads
from mmrft.train.state import save_model
from mmrft.train.forward import build_sequences, completion_logprobs, shares_prompt_with_trajectories
from mmrft.train.shared_prefix import shared_prefix_batch
from mmrft.models.positions import supports_cache_reuse
from mmrft.rewards.scoring import Scorer
from mmrft.run_lock import RunLock
from mmrft.rollout.multiturn import prompt_tools
from mmrft.track.metrics import Tracker

log = logging.getLogger("mmrft")


def pad_right(seqs: list[list], fill, dtype=torch.long) -> torch.Tensor:
    """Rows of different lengths as one right-padded [rows, longest] tensor."""
    t = max(len(s) for s in seqs)
    return torch.tensor([list(s) + [fill] * (t - len(s)) for s in seqs], dtype=dtype)


def encode_answers(processor, samples, fmt: str):
    """Each sample's supervised answer after its prompt: (ids, loss mask, attention mask, per-token keys, media).
    A sample with a `trajectory` gives its turns (assistant turns learnt, tool turns read, with their images);
    the others their `<think>rationale</think><answer>gold</answer>` target."""
    single = iter(encode_targets(processor, [s for s in samples if not s.trajectory], fmt))
    ids, loss, keys, media = [], [], [], []
    for s in samples:
        if s.trajectory:
            i, w, k, m = encode_trajectory(processor, s)
        else:
            i = next(single)
            w, k, m = [1.0] * len(i), {}, {}
        ids.append(i)
        loss.append(w)
        keys.append(k)
        media.append(m)
    names = sorted({k for row in keys for k in row})
    token_keys = {k: pad_right([row.get(k, [0] * len(i)) for row, i in zip(keys, ids)], 0) for k in names}
    return (pad_right(ids, processor.tokenizer.pad_token_id), pad_right(loss, 0.0, torch.float32),
            pad_right([[1.0] * len(i) for i in ids], 0.0, torch.float32), token_keys or None,
            media if any(media) else None)


def train_sft(cfg: Config) -> dict:
    """Supervised fine-tuning of `cfg.model` on `cfg.data` for `cfg.sft.steps` steps; the run directory is locked for
    the whole run (`mmrft.run_lock`). Returns the final checkpoint, the last loss and the held-out results."""
    with RunLock(cfg.trainer.output_dir, "sft"):
        return _train_sft(cfg)


def _train_sft(cfg: Config) -> dict:
    set_threads(cfg.trainer.threads)
    import_plugins(cfg)
    gen = seed_everything(cfg.trainer.seed)
    samples, held_out = load_data(cfg)
    run_dir = prepare_run_dir(cfg)
    device = resolve_device()
    model, processor = load_policy(cfg.model, device)
    samples = fit_to_model(samples, cfg, model, processor)
    splits = eval_splits(cfg)  # split name -> path; each split logs under eval_split_prefix
    held_out = {name: fit_to_model(part, cfg, model, processor,
                                   "data.eval" if len(held_out) == 1 else f"data.eval.{name}")
                for name, part in held_out.items() if part}
    model.train()
    opt, sched = make_optimizer(model, cfg.sft.lr, cfg.trainer.weight_decay, cfg.sft.warmup_steps, cfg.sft.steps,
                                cfg.sft.lr_schedule)
    tracker = Tracker(run_dir)
    tools = prompt_tools(cfg)  # a tool-use cold start offers the run's tools in its prompts
    batch_iter = PromptSampler(len(samples), cfg.sft.batch_size, gen)
    # the batch's common prompt prefix once (Qwen-VL: positions from the model's own index, as for trajectories)
    share_prefix = cfg.rollout.share_prompt_forward and shares_prompt_with_trajectories(model) \
        and supports_cache_reuse(model)
    placeholders = media_token_ids(processor, model)
    scorer = Scorer.from_config(cfg) if held_out else None

    def run_eval(step: int) -> dict | None:
        """task -> metrics of the one held-out split; with several, keyed `split/task`."""
        if not held_out:
            return None
        metrics, per_task = {}, {}
        for name, part in held_out.items():
            res = evaluate_held_out(cfg, model, processor, part, scorer)  # with the run's tools, if any
            keep_records(cfg, run_dir, step, name, splits, res.records)
            metrics.update(res.flat(eval_split_prefix(name, splits)))
            per_task.update(res.per_task if len(splits) == 1 else
                            {f"{name}/{task}": v for task, v in res.per_task.items()})
        model.train()
        tracker.log(step, metrics, "eval")
        return per_task

    progress = Progress(cfg.sft.steps, 1, "SFT", cfg.trainer.progress, cfg.trainer.log_every)
    t0 = time.time()
    loss_value = float("nan")
    for step in range(1, cfg.sft.steps + 1):
        chunk = [samples[i] for i in next(batch_iter)]
        prompts = encode_prompts(processor, chunk, cfg.data.prompt_format, cfg.data.system_prompt,
                                 media_options(cfg.data), family_of(model).layout or None, tools).to(device)
        ids, weights, mask, keys, media = encode_answers(processor, chunk, cfg.data.prompt_format)
        ids, weights, mask = ids.to(device), weights.to(device), mask.to(device)
        keys = {k: v.to(device) for k, v in keys.items()} if keys else None
        shared = shared_prefix_batch(prompts, ids, weights, mask, keys, media, placeholders,
                                     processor.tokenizer.pad_token_id) if share_prefix else None
        if shared is not None:  # the prompts' common beginning (system turn, tool list) computed once
            seqs, weights = shared
        else:
            seqs = build_sequences(prompts, ids, mask, n=1, response_media=media, response_keys=keys)
        logp, _ = completion_logprobs(model, seqs)
        loss = -(logp * weights).sum() / weights.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.trainer.max_grad_norm)
        opt.step()
        sched.step()
        loss_value = float(loss.detach())
        tracker.log(step, {"sft/loss": loss_value, "sft/grad_norm": float(grad_norm), "sft/lr": sched.get_last_lr()[0]}, "sft")
        progress.update(step, {"loss": f"{loss_value:.3f}", "lr": f"{sched.get_last_lr()[0]:.2e}"})
        if cfg.trainer.eval_every and step % cfg.trainer.eval_every == 0 and step < cfg.sft.steps:
            run_eval(step)
    progress.close()
    last = run_eval(cfg.sft.steps)
    final = save_model(model, processor, run_dir / "final")
    tracker.close()
    if scorer is not None:
        scorer.close()
    log.info("SFT done in %.0f s; checkpoint: %s", time.time() - t0, final)
    return {"checkpoint": str(final), "loss": loss_value, "seconds": time.time() - t0, "samples": len(samples),
            "eval": last}
