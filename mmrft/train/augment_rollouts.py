"""Rollout-time augmentation (NoisyRollout, Liu et al. 2025) in the RL step: the run's check of the settings, and the
prompts of a chunk with their images perturbed (`mmrft.data.augment`), which `mmrft.train.sampling.sample_step`
samples a share of each group on. The perturbed images travel as PNG bytes in the samples' image references, so the
processor path is the one every prompt takes; each image's noise is seeded by (trainer.seed, step, sample id, image
index), so a resumed run perturbs exactly as the uninterrupted one, with no generator state to checkpoint."""

from __future__ import annotations

import dataclasses
import io
import zlib

import torch

from mmrft.data.augment import ANNEAL_MODES, PERTURBATIONS, perturb
from mmrft.data.media import load_image
from mmrft.data.schema import Sample
from mmrft.errors import ConfigError

__all__ = ["check_augment", "perturbed_samples"]


def check_augment(cfg) -> int:
    """How many of each group's completions are sampled on perturbed images (0: `rollout.augment` is off); a clear
    error for settings that cannot work."""
    ro = cfg.rollout
    if not ro.augment:
        return 0
    try:
        PERTURBATIONS[ro.augment]
    except KeyError as e:
        raise ConfigError(f"rollout.augment: {e.args[0]}") from None
    if ro.tools or ro.environment:
        raise ConfigError("rollout.augment works on single-turn rollouts; it cannot be combined with rollout.tools "
                          "or rollout.environment")
    if ro.augment_anneal not in ANNEAL_MODES:
        raise ConfigError(f"rollout.augment_anneal: {ro.augment_anneal!r} is not one of {', '.join(ANNEAL_MODES)}")
    n = round(ro.augment_share * ro.group_size)
    if not 0 < n < ro.group_size:
        raise ConfigError(f"rollout.augment_share={ro.augment_share} of rollout.group_size={ro.group_size} gives {n} "
                          "perturbed completions per group; it must leave at least one on each side")
    return n


def _seed(*parts) -> int:
    return zlib.crc32(":".join(map(str, parts)).encode())


def perturbed_samples(chunk: list[Sample], name: str, options: dict, level: float, seed: int,
                      step: int) -> list[Sample]:
    """Copies of `chunk` whose images are perturbed by `name` at `level` (PNG bytes in the image references)."""
    out = []
    for s in chunk:
        images = []
        for k, ref in enumerate(s.images):
            gen = torch.Generator().manual_seed(_seed(seed, step, s.id, k))
            buf = io.BytesIO()
            perturb(name, load_image(ref), level, gen, **dict(options or {})).save(buf, format="PNG")
            path = ref.get("path") if isinstance(ref, dict) else ref
            images.append({"bytes": buf.getvalue(), "path": f"{path} ({name} x{level:.2f})"})
        out.append(dataclasses.replace(s, images=images))
    return out
