"""Image perturbations for rollout-time augmentation (NoisyRollout, Liu et al. 2025): a share of a group's rollouts
see a perturbed copy of the prompt's image, the perturbation's strength annealed to nothing over training, so the
group explores more while the policy is still trained on the clean image.

A perturbation is `fn(image, level, generator, **options) -> image` in the registry `PERTURBATIONS`, where `level` in
[0, 1] is the annealed strength (`anneal`) and `generator` a seeded `torch.Generator` (so a resumed run perturbs as
the uninterrupted one). Built in, all of them answer-preserving for the synthetic tasks (no crops, occlusions,
flips or colour shifts, which would change a count, a position or a colour):

* `gaussian` (NoisyRollout's choice): the forward diffusion step of a DDPM schedule, with pixels in [0, 1]:
  `x_t = sqrt(abar_t) * x + sqrt(1 - abar_t) * eps`, `eps ~ N(0, 1)`, clamped to [0, 1], at step
  `t = round(noise_step * level)` of a 1000-step schedule whose betas rise along a sigmoid from 1e-5 to 5e-3
  (`betas = sigmoid(linspace(-6, 6, 1000)) * (5e-3 - 1e-5) + 1e-5`, `abar_t = prod_{s<=t} (1 - beta_s)`), as the
  NoisyRollout code does; `noise_step` (their alpha_0, suggested 400-500) sets the strength at level 1.
* `blur`: a Gaussian blur of radius `max_radius * level` pixels.
* `brightness_contrast`: brightness and contrast each scaled by `1 + max_change * level * u`, `u ~ U(-1, 1)`.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter

from mmrft.registry import Registry

__all__ = ["PERTURBATIONS", "perturb", "anneal", "diffusion_abar", "ANNEAL_MODES"]

PERTURBATIONS: Registry = Registry("image perturbation", import_paths=True)
ANNEAL_MODES = ("none", "linear", "sigmoid")
DIFFUSION_STEPS = 1000


@lru_cache(maxsize=1)
def diffusion_abar() -> torch.Tensor:
    """abar_t for t = 0..999 of the schedule in the module docstring (float64)."""
    betas = torch.sigmoid(torch.linspace(-6, 6, DIFFUSION_STEPS, dtype=torch.float64)) * (5e-3 - 1e-5) + 1e-5
    return torch.cumprod(1 - betas, dim=0)


def _to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)


def _to_image(x: torch.Tensor) -> Image.Image:
    return Image.fromarray((x.clamp(0, 1) * 255).round().to(torch.uint8).numpy(), "RGB")


@PERTURBATIONS.register("gaussian")
def gaussian(image: Image.Image, level: float, generator: torch.Generator, noise_step: int = 500) -> Image.Image:
    t = round(min(max(noise_step, 0), DIFFUSION_STEPS - 1) * level)
    if t <= 0:
        return image.copy()
    abar = float(diffusion_abar()[t])
    x = _to_tensor(image)
    eps = torch.randn(x.shape, generator=generator)
    return _to_image(math.sqrt(abar) * x + math.sqrt(1 - abar) * eps)


@PERTURBATIONS.register("blur")
def blur(image: Image.Image, level: float, generator: torch.Generator, max_radius: float = 2.0) -> Image.Image:
    radius = max_radius * level
    return image.copy() if radius <= 0 else image.filter(ImageFilter.GaussianBlur(radius))


@PERTURBATIONS.register("brightness_contrast")
def brightness_contrast(image: Image.Image, level: float, generator: torch.Generator,
                        max_change: float = 0.3) -> Image.Image:
    u = torch.rand(2, generator=generator) * 2 - 1
    b, c = (1 + max_change * level * u).tolist()
    return ImageEnhance.Contrast(ImageEnhance.Brightness(image).enhance(b)).enhance(c)


def perturb(name: str, image: Image.Image, level: float, generator: torch.Generator, **options) -> Image.Image:
    """`image` perturbed by the registered perturbation `name` at strength `level` in [0, 1]."""
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"perturbation level must lie in [0, 1], got {level}")
    return PERTURBATIONS[name](image, level, generator, **options)


def anneal(step: int, total_steps: int, mode: str = "sigmoid", coef: float = 30.0, mid: float = 0.5) -> float:
    """The strength multiplier in [0, 1] at `step` of `total_steps`, with `p = step / total_steps`:
    `none`: 1; `linear`: 1 - p; `sigmoid`: 1 - 1 / (1 + exp(-coef * (p - mid))) (NoisyRollout's default: near 1
    until about `mid` of training, then falls to about 0 within a few percent of it; `coef` sets how fast)."""
    if mode not in ANNEAL_MODES:
        raise ValueError(f"anneal mode {mode!r} is not one of {', '.join(ANNEAL_MODES)}")
    p = min(max(step / max(total_steps, 1), 0.0), 1.0)
    if mode == "none":
        return 1.0
    if mode == "linear":
        return 1.0 - p
    z = coef * (p - mid)
    return 1.0 - (1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0)
