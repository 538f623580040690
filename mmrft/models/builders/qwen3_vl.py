"""Tiny Qwen3-VL (`model_type` qwen3_vl): ViT with 16-px patches and DeepStack feature injection + Qwen3 decoder
with interleaved M-RoPE.

- Tower / projector module names: `visual` (its `merger` and `deepstack_merger_list` are the projectors).
- Placeholders never to sample: `<|image_pad|>`, `<|video_pad|>`, `<|vision_start|>`, `<|vision_end|>`.
- Processor: `Qwen3VLImageOnlyProcessor` (processors.py) over `Qwen2VLImageProcessorPil` with patch 16, merge 2:
  `pixel_values` [patches, C*T*16*16] + `image_grid_thw` [images, 3] (flattened patches, as Qwen2-VL); per-token
  `mm_token_type_ids`. A 112x112 image is resized to 128x128 (multiple of 32): 64 patches -> 16 tokens.
- Grounding: boxes on a 0-1000 grid of the image (Qwen3-VL cookbooks).
- Video is not wired for this family: Qwen3-VL's video prompt interleaves per-frame timestamps text, built by its
  torchvision video processor.
"""

from __future__ import annotations

from transformers import AutoModelForMultimodalLM, Qwen2VLImageProcessorPil, Qwen3VLConfig

from mmrft.models.processors import Qwen3VLImageOnlyProcessor
from mmrft.models.tiny import CHAT_SCAFFOLD, QWEN2_VL_CHAT_TEMPLATE, QWEN_SPECIAL_TOKENS, TinySize, _rope_section
from mmrft.models.tiny import text_config, train_bpe_tokenizer

MODEL_TYPE = "qwen3_vl"
VISION_TOWER = ("visual",)
PROJECTOR = ("visual.merger", "visual.deepstack_merger_list")
LANGUAGE_MODEL = ("language_model", "lm_head")
MEDIA_TOKENS = ["<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>"]
PATCH = 16


def build(size: TinySize, corpus: list[str], vocab_size: int):
    # Qwen3-VL instruct ships the Qwen2-VL style template for image/video items (plus tool calling, not needed here)
    tokenizer = train_bpe_tokenizer(
        corpus, special_tokens=QWEN_SPECIAL_TOKENS, scaffold=CHAT_SCAFFOLD, chat_template=QWEN2_VL_CHAT_TEMPLATE,
        eos="<|im_end|>", pad="<|endoftext|>", vocab_size=vocab_size,
    )
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    head_dim = size.hidden // size.heads
    text = text_config(
        size, len(tokenizer), bos=ids["<|endoftext|>"], eos=ids["<|im_end|>"], pad=ids["<|endoftext|>"],
        head_dim=head_dim,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": _rope_section(head_dim),
                         "mrope_interleaved": True},
    )
    side = (size.image_size + 2 * PATCH - 1) // (2 * PATCH) * 2  # patches per side after the resize
    vision = dict(
        depth=size.vision_depth, hidden_size=size.vision_embed, intermediate_size=size.vision_embed * 2,
        num_heads=size.vision_heads, patch_size=PATCH, spatial_merge_size=2, temporal_patch_size=2,
        out_hidden_size=size.hidden, num_position_embeddings=side * side,
        deepstack_visual_indexes=[size.vision_depth // 2],
    )
    config = Qwen3VLConfig(
        text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=True,
    )
    model = AutoModelForMultimodalLM.from_config(config)
    pixels = (side * PATCH) ** 2
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=pixels, max_pixels=pixels, patch_size=PATCH, merge_size=2, temporal_patch_size=2,
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
    )
    processor = Qwen3VLImageOnlyProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                          chat_template=QWEN2_VL_CHAT_TEMPLATE)
    return model, processor
