"""Real-size architectures: the published Qwen2.5-VL shapes reach transformers' model (built on the meta device)."""

import pytest
import torch

from mmrft.models.sizes import REAL_SIZES, build_real_config
from mmrft.models.tiny import QWEN_SPECIAL_TOKENS, make_tiny_model

IDS = {t: i for i, t in enumerate(QWEN_SPECIAL_TOKENS)}


class _Vocab:
    def __len__(self):
        return 600


@pytest.mark.parametrize("size,h,inter,layers,kv", [("qwen2.5-vl-3b", 2048, 11008, 36, 256),
                                                    ("qwen2.5-vl-7b", 3584, 18944, 28, 512)])
def test_published_shapes_reach_the_model(size, h, inter, layers, kv):
    from transformers import AutoModelForImageTextToText

    config = build_real_config(size, _Vocab(), IDS)
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    lm = model.model.language_model
    assert len(lm.layers) == layers
    attn, mlp = lm.layers[0].self_attn, lm.layers[0].mlp
    assert (attn.q_proj.out_features, attn.k_proj.out_features, mlp.gate_proj.out_features) == (h, kv, inter)
    assert lm.embed_tokens.num_embeddings == 600  # the tiny tokenizer's vocabulary, not the published one
    visual = model.model.visual
    assert len(visual.blocks) == 32 and visual.blocks[0].attn.qkv.out_features == 3 * 1280
    assert visual.blocks[0].mlp.gate_proj.out_features == 3420
    assert visual.merger.mlp[-1].out_features == h  # the tower projects into the decoder's width
    assert list(config.vision_config.fullatt_block_indexes) == [7, 15, 23, 31]
    assert config.vision_config.window_size == 112
    assert config.text_config.rope_parameters["mrope_section"] == [16, 24, 24]
    assert model.config.tie_word_embeddings is (size == "qwen2.5-vl-3b")
    n = sum(p.numel() for p in model.parameters())
    published = n + REAL_SIZES[size].published_vocab_size * h * (1 if size.endswith("3b") else 2) - 600 * h * (
        1 if size.endswith("3b") else 2)
    assert abs(published - (3.75e9 if size.endswith("3b") else 8.29e9)) < 0.01e9  # the model cards' counts


def test_real_size_refuses_another_family(tmp_path):
    with pytest.raises(ValueError, match="qwen2_5_vl configuration"):
        make_tiny_model(tmp_path / "m", arch="qwen2_vl", size="qwen2.5-vl-3b")
    with pytest.raises(ValueError, match="unknown size 'huge'"):
        make_tiny_model(tmp_path / "m", size="huge")
    with pytest.raises(ValueError, match="got arch 'gemma3'"):
        make_tiny_model(tmp_path / "m", arch="gemma3", size="qwen2.5-vl-3b")
