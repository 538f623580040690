import pytest
import torch

from mmrft.train.data import fit_to_model
from mmrft.train.samplers import PromptSampler


def test_prompt_sampler_covers_each_epoch_once():
    gen = torch.Generator().manual_seed(0)
    it = PromptSampler(10, 4, gen)
    first = [i for _ in range(5) for i in next(it)]  # 20 indices = two epochs
    assert sorted(first[:10]) == list(range(10)) and sorted(first[10:]) == list(range(10))
    again = PromptSampler(10, 4, torch.Generator().manual_seed(0))
    assert [i for _ in range(5) for i in next(again)] == first  # same seed, same order


def test_fit_to_model_refuses_media_the_family_does_not_take():
    from types import SimpleNamespace

    from mmrft.config import load_config
    from mmrft.data.schema import Sample
    from mmrft.errors import ConfigError

    cfg = load_config(None, [])
    audio_model = SimpleNamespace(config=SimpleNamespace(model_type="qwen2_audio"))
    video = Sample(id="v", prompt="Which way?", answer="A", videos=["/x.mp4"])
    with pytest.raises(ConfigError, match="data.eval: the samples carry video but model.path is a qwen2_audio model, "
                                          "which takes audio"):
        fit_to_model([video], cfg, audio_model, processor=None, what="data.eval")
    sound = Sample(id="a", prompt="How many beeps?", answer="2", audios=["/x.wav"])
    assert fit_to_model([sound], cfg, audio_model, processor=None) == [sound]
