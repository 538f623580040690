"""The optimizer and its learning-rate schedule (SFT, the policy and PPO's critic)."""

from __future__ import annotations

import math

import torch

from mmrft.errors import ConfigError

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
