"""Process-wide settings of a run: random seeds and CPU threads; and when a `trainer.*_every` schedule falls."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; returns the trainer's own generator (sampling order, minibatch shuffles)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def set_threads(n: int, world_size: int = 1) -> None:
    """`n` torch CPU threads; 0 keeps torch's default, except that several processes on one CPU machine
    (`world_size` > 1, no CUDA) share its cores instead of each taking all of them."""
    if n == 0 and world_size > 1 and not torch.cuda.is_available():
        n = max(1, torch.get_num_threads() // int(os.environ.get("LOCAL_WORLD_SIZE", world_size)))
    if n > 0:
        torch.set_num_threads(n)


def due(every: int, step: int) -> bool:
    """Whether a `trainer.*_every` schedule (evaluations, checkpoints) falls on `step`; every=0: never."""
    return bool(every) and step % every == 0
