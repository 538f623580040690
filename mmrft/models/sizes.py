"""Real-size architectures: the published configurations of real checkpoints, built with random weights.

`mmrft make-tiny-model OUT --size qwen2.5-vl-3b` writes a model with the layer counts and widths of
Qwen2.5-VL-3B-Instruct (text decoder and vision tower) but mmrft's small locally trained tokenizer, so the vocabulary
(and with it the embedding and output matrices) is the tokenizer's (~600 ids) instead of the published 151,936 /
152,064: everything else is the real shape. Such a model measures what memory and time a real-size step takes
without downloading a checkpoint; it answers nothing sensibly (random weights).

Values are those of the checkpoints' `config.json` files on the Hugging Face hub (Qwen/Qwen2.5-VL-3B-Instruct,
Qwen/Qwen2.5-VL-7B-Instruct). Weights are written in bfloat16, the published checkpoints' dtype (3B-shaped:
3.44 G parameters, 6.9 GB on disk).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Qwen2.5-VL's vision tower, the same in the 3B and 7B checkpoints (only out_hidden_size, the decoder width, differs).
QWEN2_5_VL_VISION = dict(
    depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, patch_size=14, spatial_merge_size=2,
    temporal_patch_size=2, in_channels=3, window_size=112, fullatt_block_indexes=[7, 15, 23, 31],
    tokens_per_second=2, hidden_act="silu",
)


@dataclass(frozen=True)
class RealSize:
    """One published configuration: the decoder's and the vision tower's shapes."""

    checkpoint: str  # where the values come from (the hub id of the checkpoint)
    arch: str  # transformers model_type
    text: dict = field(default_factory=dict)  # decoder config keys (published values)
    vision: dict = field(default_factory=dict)  # vision config keys (published values; out_hidden_size = text width)
    published_vocab_size: int = 0  # the real tokenizer's embedding rows (not used: the tiny tokenizer's size is)
    image_size: int = 56  # the processor resizes every image to this many pixels on a side (2x2 merged tokens ... )
    dtype: str = "bfloat16"


REAL_SIZES: dict[str, RealSize] = {
    "qwen2.5-vl-3b": RealSize(
        checkpoint="Qwen/Qwen2.5-VL-3B-Instruct", arch="qwen2_5_vl",
        text=dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
                  num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=1000000.0, max_position_embeddings=128000,
                  tie_word_embeddings=True, mrope_section=[16, 24, 24]),
        vision={**QWEN2_5_VL_VISION, "out_hidden_size": 2048},
        published_vocab_size=151936,
    ),
    "qwen2.5-vl-7b": RealSize(
        checkpoint="Qwen/Qwen2.5-VL-7B-Instruct", arch="qwen2_5_vl",
        text=dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                  num_key_value_heads=4, rms_norm_eps=1e-6, rope_theta=1000000.0, max_position_embeddings=128000,
                  tie_word_embeddings=False, mrope_section=[16, 24, 24]),
        vision={**QWEN2_5_VL_VISION, "out_hidden_size": 3584},
        published_vocab_size=152064,
    ),
}


def build_real_config(size: str, tokenizer, special_ids: dict[str, int]):
    """A transformers config with `size`'s published shapes and `tokenizer`'s vocabulary and special-token ids."""
    if size not in REAL_SIZES:
        raise ValueError(f"size {size!r}: expected one of {', '.join(REAL_SIZES)}")
    spec = REAL_SIZES[size]
    from transformers import Qwen2_5_VLConfig

    t = dict(spec.text)
    mrope, theta, tie = t.pop("mrope_section"), t.pop("rope_theta"), t["tie_word_embeddings"]
    text = dict(
        t, vocab_size=len(tokenizer), bos_token_id=special_ids["<|endoftext|>"], eos_token_id=special_ids["<|im_end|>"],
        pad_token_id=special_ids["<|endoftext|>"], hidden_act="silu", sliding_window=32768, use_sliding_window=False,
        rope_parameters={"rope_type": "default", "rope_theta": theta, "mrope_section": mrope},
    )
    return Qwen2_5_VLConfig(
        text_config=text, vision_config=dict(spec.vision),
        image_token_id=special_ids["<|image_pad|>"], video_token_id=special_ids["<|video_pad|>"],
        vision_start_token_id=special_ids["<|vision_start|>"], vision_end_token_id=special_ids["<|vision_end|>"],
        tie_word_embeddings=tie,
    )
