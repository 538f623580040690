"""Pieces shared by the SFT and RL loops: seeding, run directories, optimizer, batches, the final checkpoint."""

from __future__ import annotations

import copy
import math
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from mmrft import atomic
from mmrft.config import Config, config_to_yaml
from mmrft.data.schema import Sample
from mmrft.data.sources import load_samples
from mmrft.errors import ConfigError
from mmrft.models.families import family_of
from mmrft.models.grounding import adapt_boxes

BOX_CONVENTIONS = ("family", "data")


def load_data(cfg: Config) -> tuple[list[Sample], list[Sample]]:
    """(training samples, held-out samples) of `cfg.data`, validated (media readable, not over-long)."""
    d = cfg.data
    if d.box_convention not in BOX_CONVENTIONS:
        raise ConfigError(f"data.box_convention: {d.box_convention!r} is not one of {', '.join(BOX_CONVENTIONS)}")
    limits = dict(max_video_seconds=d.max_video_seconds, max_audio_seconds=d.max_audio_seconds)
    train = load_samples(d.train, skip_bad_rows=d.skip_bad_rows, limit=d.train_limit, **limits)
    held_out = load_samples(d.eval, skip_bad_rows=d.skip_bad_rows, limit=d.eval_limit, **limits) if d.eval else []
    return train, held_out


def fit_to_model(samples: list[Sample], cfg: Config, model, processor, what: str = "data.train") -> list[Sample]:
    """Check the model's family takes every modality the samples carry (a clear error instead of a processor
    traceback), and write grounding boxes in the family's convention when `data.box_convention` is "family"."""
    family = family_of(model)
    wanted = sorted({m for s in samples for m in s.modalities})
    if family.model_type != "generic":
        missing = [m for m in wanted if not family.supports(m)]
        if missing:
            raise ConfigError(f"{what}: the samples carry {', '.join(missing)} but model.path is a "
                              f"{family.model_type} model, which takes {', '.join(family.modalities)}")
    if cfg.data.box_convention == "family":
        samples = adapt_boxes(samples, family, processor)
    return samples


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def set_threads(n: int) -> None:
    if n > 0:
        torch.set_num_threads(n)


def prepare_run_dir(cfg: Config, name: str = "config.yaml", resuming: bool = False) -> Path:
    """Create the run directory and save the resolved config; refuse to mix two runs in one directory.

    A resumed run continues in its own directory (its metrics and checkpoints stay); its config is saved as
    `config.resumed.yaml` beside the original."""
    run_dir = Path(cfg.trainer.output_dir)
    if resuming:
        atomic.write_text(run_dir / name.replace(".yaml", ".resumed.yaml"), config_to_yaml(cfg))
        return run_dir
    if run_dir.exists() and (run_dir / "metrics.jsonl").exists() and not cfg.trainer.overwrite:
        raise ConfigError(
            f"trainer.output_dir: {run_dir} already holds a run; choose another directory, set "
            "trainer.overwrite=true, or continue it with trainer.resume=auto"
        )
    if run_dir.exists() and cfg.trainer.overwrite:
        for f in ("metrics.jsonl",):
            (run_dir / f).unlink(missing_ok=True)
        for d in ["tensorboard", "rollouts", *(p.name for p in run_dir.glob("checkpoint-*"))]:
            shutil.rmtree(run_dir / d, ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(run_dir / name, config_to_yaml(cfg))
    return run_dir


LR_SCHEDULES = ("constant", "linear", "cosine")


def lr_factor(step: int, warmup_steps: int, total_steps: int, schedule: str) -> float:
    """Multiplier of the base learning rate at optimizer step `step` (0-based): linear warm-up over
    `warmup_steps`, then constant, or a linear / cosine decay that reaches 0 after `total_steps`."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant" or total_steps <= warmup_steps:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    if schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(model, lr: float, weight_decay: float, warmup_steps: int, total_steps: int = 0,
                   schedule: str = "constant"):
    """AdamW over the trainable parameters, with a per-optimizer-step LambdaLR schedule."""
    if schedule not in LR_SCHEDULES:
        raise ConfigError(f"lr_schedule: {schedule!r} is not one of {', '.join(LR_SCHEDULES)}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("no trainable parameters: check model.freeze_vision / model.lora settings")
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    warm = max(int(warmup_steps), 0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, warm, total_steps, schedule))
    return opt, sched


class PromptSampler:
    """Endless batches of dataset indices, a fresh permutation each epoch (drawn from `generator`).

    `state_dict()` holds what is left of the current epoch's order, so a resumed run draws exactly the batches the
    uninterrupted run would have (the generator's own state is checkpointed beside it)."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator) -> None:
        if n == 0:
            raise ConfigError("the training dataset is empty")
        self.n, self.batch_size, self.generator = n, batch_size, generator
        self.order: list[int] = []

    def __iter__(self) -> "PromptSampler":
        return self

    def __next__(self) -> list[int]:
        batch: list[int] = []
        while len(batch) < self.batch_size:
            if not self.order:
                self.order = torch.randperm(self.n, generator=self.generator).tolist()
            batch.append(self.order.pop(0))
        return batch

    def state_dict(self) -> dict:
        return {"n": self.n, "order": list(self.order)}

    def load_state_dict(self, state: dict) -> None:
        if state["n"] != self.n:
            raise ConfigError(f"the checkpoint was taken on a dataset of {state['n']} samples, this one has {self.n}")
        self.order = list(state["order"])


def batches(n: int, batch_size: int, generator: torch.Generator) -> PromptSampler:
    """Endless batches of indices: a fresh permutation each epoch (drawn from `generator`)."""
    return PromptSampler(n, batch_size, generator)


def save_model(model, processor, out: Path) -> Path:
    """Write a checkpoint that `from_pretrained` loads (LoRA adapters merged into a copy), atomically."""
    to_save = model
    if hasattr(model, "merge_and_unload"):  # peft: a full checkpoint is what from_pretrained users expect
        to_save = copy.deepcopy(model).merge_and_unload()
    with atomic.directory(out) as tmp:
        to_save.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
    return Path(out)
