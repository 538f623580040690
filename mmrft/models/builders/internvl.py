"""InternVL 3 (InternVL3-1B-hf style): InternViT vision tower + pixel-shuffle MLP projector + Qwen2 text model.

- model_type: `internvl` (`InternVLForConditionalGeneration`).
- Vision tower: module names containing `vision_tower` (InternViT, with a CLS token that is dropped). Projector:
  `multi_modal_projector` (pixel shuffle by `downsample_ratio`, LayerNorm, linear, GELU, linear). Language model:
  `language_model`, head `lm_head` (tied to the input embeddings here).
- Media tokens never to sample: `<IMG_CONTEXT>` (`config.image_token_id`: the chat template writes one per image
  followed by "\\n"; the processor expands it to `<img>` + `<IMG_CONTEXT>` x `image_seq_length` x tiles + `</img>`),
  `<img>`, `</img>`, `<video>`.
- Processor output keys: `input_ids`, `attention_mask`, `pixel_values` [num_tiles_in_batch, 3, 112, 112]: tiles of
  all images of all prompts concatenated in the order the images appear; with tiling off (here) one row per image.
  The per-image tile counts (`num_patches`) are used for the text and not returned. No grid tensor.
- Extra per-token input: none.
- Grounding: `<ref>phrase</ref><box>[[x1, y1, x2, y2]]</box>` with coordinates normalised to 0-1000 of the image
  width/height (InternVL documentation, internvl.readthedocs.io, grounding examples; VLMEvalKit's InternVL wrapper
  divides by 1000). `<ref>`, `</ref>`, `<box>`, `</box>`, `<quad>`, `</quad>` are single special tokens here as in
  the real tokenizer.

Processor: `InternVLProcessor` always takes a video processor (torchvision), so this module defines
`InternVLImageOnlyProcessor` (images and text only), registered with `AutoProcessor` on import.

Tiny-model differences from the real checkpoint: 112 px tiles, no dynamic tiling (real: up to 12 tiles of 448 px
plus a thumbnail), 16 tokens per tile (8x8 patches of 14 px, pixel-shuffled by 0.5) instead of 256.
"""

from __future__ import annotations

import re

from transformers import AutoModelForImageTextToText, GotOcr2ImageProcessorPil, InternVLConfig
from transformers.models.internvl.processing_internvl import InternVLProcessor
from transformers.processing_utils import ProcessorMixin

from mmrft.models.builders import set_named_tokens, split_at_special, token_ids
from mmrft.models.processors import register_processor
from mmrft.models.tiny import TinySize, text_config, train_bpe_tokenizer, vision_config

MODEL_TYPE = "internvl"
VISION_TOWER = ("vision_tower",)
PROJECTOR = ("multi_modal_projector",)
LANGUAGE_MODEL = ("language_model", "lm_head")
ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
IMG_START, IMG_END, IMG_CONTEXT, VIDEO = "<img>", "</img>", "<IMG_CONTEXT>", "<video>"
GROUNDING = ["<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>"]
SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END, IMG_START, IMG_END, IMG_CONTEXT, *GROUNDING, VIDEO]
MEDIA_TOKENS = [IMG_CONTEXT, IMG_START, IMG_END, VIDEO]

# The chat template of the InternVL3-*-hf checkpoints, verbatim as written by transformers'
# convert_internvl_weights_to_hf.py (no default system prompt; the original InternVL repo's conversation template
# adds a Chinese one, the -hf checkpoints do not).
CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n'}}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}{{ '<IMG_CONTEXT>\\n' }}"
    "{% elif content['type'] == 'video' %}{{ '<video>\\n' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{'<|im_end|>\\n'}}{% endfor %}{% if add_generation_prompt %}{{'<|im_start|>assistant\\n' }}{% endif %}"
)
SCAFFOLD = [
    "<|im_start|>user\n<IMG_CONTEXT>\n", "<|im_end|>\n<|im_start|>assistant\n", "<ref></ref><box>[[", "]]</box>",
]
PATCH = 14
DOWNSAMPLE = 0.5


class InternVLImageOnlyProcessor(InternVLProcessor):
    """`InternVLProcessor` without the video processor (images and text only; no torchvision needed).

    Tiling is off by default (`InternVLProcessor` forces `crop_to_patches=True` at call time, overriding the image
    processor's own setting); pass `crop_to_patches=True` to the call to tile."""

    images_kwargs = {"crop_to_patches": False}

    def __init__(self, image_processor=None, tokenizer=None, image_seq_length: int = 256, chat_template=None, **kwargs):
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)
        # Same bookkeeping as InternVLProcessor.__init__ (transformers 5.23).
        self.image_seq_length = image_seq_length
        self.start_image_token = tokenizer.start_image_token
        self.end_image_token = tokenizer.end_image_token
        self.start_image_token_id = tokenizer.start_image_token_id
        self.end_image_token_id = tokenizer.end_image_token_id
        self.image_token = tokenizer.context_image_token
        self.video_token = tokenizer.video_token
        self.image_token_id = tokenizer.context_image_token_id
        self.multimodal_pattern = re.compile(
            f"(?P<image>{re.escape(self.image_token)})|(?P<video>{re.escape(self.video_token)})"
        )


register_processor(InternVLImageOnlyProcessor)


def build_tokenizer(corpus: list[str], vocab_size: int = 512):
    tok = train_bpe_tokenizer(
        split_at_special(corpus, SPECIAL_TOKENS), special_tokens=SPECIAL_TOKENS,
        scaffold=split_at_special(SCAFFOLD, SPECIAL_TOKENS), chat_template=CHAT_TEMPLATE,
        eos=IM_END, pad=ENDOFTEXT, vocab_size=vocab_size,
    )
    set_named_tokens(
        tok, start_image_token=IMG_START, end_image_token=IMG_END, context_image_token=IMG_CONTEXT, video_token=VIDEO
    )
    return tok


def image_seq_length(size: TinySize) -> int:
    patches = size.image_size // PATCH
    if size.image_size % PATCH or (patches * DOWNSAMPLE) % 1:
        raise ValueError(f"image_size {size.image_size}: {patches} patches a side do not pixel-shuffle by {DOWNSAMPLE}")
    return int(patches * DOWNSAMPLE) ** 2


def build_config(size: TinySize, tokenizer) -> InternVLConfig:
    ids = token_ids(tokenizer, SPECIAL_TOKENS)
    text = text_config(
        size, len(tokenizer), bos=ids[ENDOFTEXT], eos=ids[IM_END], pad=ids[ENDOFTEXT],
        model_type="qwen2",
        tie_word_embeddings=True,
    )
    vision = vision_config(
        size,
        image_size=[size.image_size, size.image_size],
        patch_size=[PATCH, PATCH],
        use_absolute_position_embeddings=True,
    )
    return InternVLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids[IMG_CONTEXT],
        image_seq_length=image_seq_length(size),
        downsample_ratio=DOWNSAMPLE,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        tie_word_embeddings=True,
    )


def build_processor(size: TinySize, tokenizer, config: InternVLConfig) -> InternVLImageOnlyProcessor:
    image_processor = GotOcr2ImageProcessorPil(
        size={"height": size.image_size, "width": size.image_size},
        crop_to_patches=False,
        image_mean=[0.485, 0.456, 0.406],  # InternVL3-hf preprocessor_config.json (ImageNet normalisation)
        image_std=[0.229, 0.224, 0.225],
    )
    return InternVLImageOnlyProcessor(
        image_processor=image_processor, tokenizer=tokenizer, image_seq_length=config.image_seq_length,
        chat_template=CHAT_TEMPLATE,
    )


def build(size: TinySize, corpus: list[str], vocab_size: int = 512):
    tokenizer = build_tokenizer(corpus, vocab_size)
    config = build_config(size, tokenizer)
    model = AutoModelForImageTextToText.from_config(config)
    return model, build_processor(size, tokenizer, config)
