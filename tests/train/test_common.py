import math

import pytest
import torch

from mmrft.errors import ConfigError
from mmrft.train.common import batches, lr_factor, make_optimizer


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


def test_batches_cover_each_epoch_once():
    gen = torch.Generator().manual_seed(0)
    it = batches(10, 4, gen)
    first = [i for _ in range(5) for i in next(it)]  # 20 indices = two epochs
    assert sorted(first[:10]) == list(range(10)) and sorted(first[10:]) == list(range(10))
    again = batches(10, 4, torch.Generator().manual_seed(0))
    assert [i for _ in range(5) for i in next(again)] == first  # same seed, same order


def test_fit_to_model_refuses_media_the_family_does_not_take():
    from types import SimpleNamespace

    from mmrft.config import load_config
    from mmrft.data.schema import Sample
    from mmrft.errors import ConfigError
    from mmrft.train.common import fit_to_model

    cfg = load_config(None, [])
    audio_model = SimpleNamespace(config=SimpleNamespace(model_type="qwen2_audio"))
    video = Sample(id="v", prompt="Which way?", answer="A", videos=["/x.mp4"])
    with pytest.raises(ConfigError, match="data.eval: the samples carry video but model.path is a qwen2_audio model, "
                                          "which takes audio"):
        fit_to_model([video], cfg, audio_model, processor=None, what="data.eval")
    sound = Sample(id="a", prompt="How many beeps?", answer="2", audios=["/x.wav"])
    assert fit_to_model([sound], cfg, audio_model, processor=None) == [sound]
