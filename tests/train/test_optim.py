import math

import pytest
import torch

from mmrft.errors import ConfigError
from mmrft.train.optim import lr_factor, make_optimizer


@pytest.mark.parametrize(
    "step,schedule,expected",
    [
        (0, "constant", 0.25), (3, "constant", 1.0), (50, "constant", 1.0),  # warm-up 4 steps: 1/4, 2/4, ...
        (4, "linear", 1.0), (54, "linear", 0.5), (104, "linear", 0.0), (200, "linear", 0.0),
        (4, "cosine", 1.0), (54, "cosine", 0.5), (29, "cosine", 0.5 * (1 + math.cos(math.pi * 0.25))),
        (104, "cosine", 0.0),
    ],
)
def test_lr_factor(step, schedule, expected):
    assert lr_factor(step, warmup_steps=4, total_steps=104, schedule=schedule) == pytest.approx(expected, abs=1e-12)


def test_make_optimizer_checks():
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ConfigError, match="lr_schedule: 'cosin'"):
        make_optimizer(model, 1e-3, 0.0, 0, 10, "cosin")
    model.requires_grad_(False)
    with pytest.raises(ConfigError, match="no trainable parameters"):
        make_optimizer(model, 1e-3, 0.0, 0)
