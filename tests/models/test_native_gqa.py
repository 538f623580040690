"""Grouped-query attention on CPU: torch's SDPA with `enable_gqa` (what `load_policy` asks transformers for on a
machine without a GPU) gives the logits of transformers' key/value copies, on a padded batch (a mask: the case
where transformers copies)."""

from __future__ import annotations

import dataclasses

import torch

from mmrft.config import ModelConfig
from mmrft.data.collate import encode_prompts
from mmrft.data.sources import load_samples
from mmrft.models.load import load_policy, native_gqa_on_cpu

FLAG = "TRANSFORMERS_SDPA_FORCE_GQA"


def test_native_gqa_gives_the_same_logits(tiny_model_dir, count_data, monkeypatch):
    monkeypatch.delenv(FLAG, raising=False)
    model, proc = load_policy(ModelConfig(path=str(tiny_model_dir)))
    assert native_gqa_on_cpu("cpu") and model.config.text_config.num_key_value_heads < \
        model.config.text_config.num_attention_heads  # the tiny model groups its heads: the case that matters
    samples = load_samples(count_data["train"])
    longer = dataclasses.replace(samples[1], prompt=samples[1].prompt + " Look at every corner of the image first.")
    prompts = encode_prompts(proc, [samples[0], longer])
    mask = prompts.inputs["attention_mask"].bool()
    assert not mask.all()  # padded
    logits = {}
    for flag in ("0", "1"):
        monkeypatch.setenv(FLAG, flag)
        with torch.no_grad():
            logits[flag] = model(**prompts.inputs).logits[mask]
    torch.testing.assert_close(logits["1"], logits["0"], atol=1e-5, rtol=0)


def test_a_users_setting_is_kept(monkeypatch):
    monkeypatch.setenv(FLAG, "0")
    assert not native_gqa_on_cpu("cpu")
    monkeypatch.delenv(FLAG)
    assert not native_gqa_on_cpu("meta") and FLAG not in __import__("os").environ
