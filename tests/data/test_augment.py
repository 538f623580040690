"""Image perturbations for rollout-time augmentation: the diffusion-noise step against its formula, strength 0 is the
identity, seeded generators repeat, blur and brightness/contrast move pixels the way they say, the anneal schedules
against hand-computed values, a user perturbation through the registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from mmrft.data.augment import PERTURBATIONS, anneal, diffusion_abar, perturb


def grey(value: int = 128, size: int = 64) -> Image.Image:
    return Image.new("RGB", (size, size), (value, value, value))


def test_diffusion_schedule_matches_its_formula():
    abar = diffusion_abar()
    betas = 1 - abar[1:] / abar[:-1]
    assert len(abar) == 1000 and float(abar[0]) == pytest.approx(1 - (1 / (1 + math.exp(6)) * (5e-3 - 1e-5) + 1e-5))
    assert float(betas.min()) > 1e-5 - 1e-12 and float(betas.max()) < 5e-3 and bool((betas[1:] >= betas[:-1]).all())
    # at NoisyRollout's usual alpha_0 = 500 the signal keeps about this share
    assert float(abar[500]) == pytest.approx(float(torch.prod(1 - (torch.sigmoid(torch.linspace(
        -6, 6, 1000, dtype=torch.float64)) * (5e-3 - 1e-5) + 1e-5)[:501])))


def test_gaussian_noise_has_the_predicted_mean_and_spread():
    image = grey(128, 256)
    out = perturb("gaussian", image, 1.0, torch.Generator().manual_seed(0), noise_step=100)
    abar = float(diffusion_abar()[100])
    x = np.asarray(out, dtype=np.float64) / 255
    mean, std = math.sqrt(abar) * 128 / 255, math.sqrt(1 - abar)  # x in [0, 1]; clamping is rare at this step
    assert x.mean() == pytest.approx(mean, abs=0.01) and x.std() == pytest.approx(std, rel=0.05)
    again = perturb("gaussian", image, 1.0, torch.Generator().manual_seed(0), noise_step=100)
    assert np.array_equal(np.asarray(out), np.asarray(again))  # seeded: a resumed run perturbs the same
    assert np.array_equal(np.asarray(perturb("gaussian", image, 0.0, torch.Generator(), noise_step=500)),
                          np.asarray(image))  # level 0: unchanged


def test_blur_and_brightness_contrast():
    img = Image.new("RGB", (32, 32), (0, 0, 0))
    img.paste((255, 255, 255), (16, 0, 32, 32))  # a sharp vertical edge
    soft = np.asarray(perturb("blur", img, 1.0, torch.Generator(), max_radius=2.0))[:, :, 0]
    assert 0 < soft[5, 15] < 255 and 0 < soft[5, 16] < 255  # the edge is no longer a step
    assert np.array_equal(np.asarray(perturb("blur", img, 0.0, torch.Generator())), np.asarray(img))
    gen = torch.Generator().manual_seed(3)
    u = torch.rand(2, generator=torch.Generator().manual_seed(3)) * 2 - 1
    out = perturb("brightness_contrast", grey(100), 1.0, gen, max_change=0.3)
    b = 1 + 0.3 * float(u[0])  # a flat image: contrast leaves it flat, brightness scales it
    assert np.asarray(out)[0, 0, 0] == pytest.approx(100 * b, abs=1)


def test_anneal_schedules():
    assert anneal(30, 100, "none") == 1.0
    assert anneal(25, 100, "linear") == pytest.approx(0.75)
    assert anneal(50, 100, "sigmoid", coef=30, mid=0.5) == pytest.approx(0.5)
    assert anneal(0, 100, "sigmoid", coef=30, mid=0.5) == pytest.approx(1 - 1 / (1 + math.exp(15)))
    assert anneal(100, 100, "sigmoid", coef=30, mid=0.4) == pytest.approx(1 - 1 / (1 + math.exp(-18)))
    with pytest.raises(ValueError, match="anneal mode"):
        anneal(1, 10, "cosine")
    with pytest.raises(ValueError, match=r"level must lie in \[0, 1\]"):
        perturb("blur", grey(), 1.5, torch.Generator())


def test_a_user_perturbation():
    @PERTURBATIONS.register("test_invert")
    def invert(image, level, generator):
        return Image.eval(image, lambda v: 255 - v) if level > 0.5 else image

    assert np.asarray(perturb("test_invert", grey(10), 1.0, torch.Generator()))[0, 0, 0] == 245
    assert {"gaussian", "blur", "brightness_contrast"} <= set(PERTURBATIONS)
