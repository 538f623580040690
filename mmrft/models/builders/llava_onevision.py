"""LLaVA-OneVision (llava-onevision-qwen2-0.5b-ov-hf style): SigLIP vision tower + 2-layer MLP projector + Qwen2 text
model, AnyRes image tiling with a learned row-end embedding.

- model_type: `llava_onevision` (`LlavaOnevisionForConditionalGeneration`).
- Vision tower: module names containing `vision_tower` (SigLIP). Projector: `multi_modal_projector` (linear, GELU,
  linear). Also vision-side: the parameter `model.image_newline` (appended after each row of AnyRes features; it is
  NOT under the projector, and not matched by `mmrft.models.load.VISION_MODULE_KEYS`). Language model:
  `language_model`, head `lm_head` (tied to the input embeddings here).
- Media tokens never to sample: `<image>` (`config.image_token_id`; the chat template writes one per image followed
  by "\\n", the processor repeats it once per image feature), `<video>` (`config.video_token_id`).
- Processor output keys: `input_ids`, `attention_mask`, `pixel_values` [num_images_in_batch, max_tiles, 3, 112, 112]
  (one row per image, images of all prompts concatenated in prompt order; the tile axis holds the whole image first,
  then the AnyRes crops, zero-padded to the largest count in the batch), `image_sizes` [num_images_in_batch, 2] (the
  original height, width: the model uses it to unpad), `batch_num_images` [batch] (images per prompt: the model
  tiles only prompts with exactly one image).
- Image tokens per image: with ONE image in a prompt, base features + AnyRes features + one newline per feature row
  = 16 + 16 + 4 = 36 here (for a square image); with SEVERAL images in a prompt each gets only its base features + 1
  newline = 17. So two images give 34 tokens, not 2 x 36: the count depends on how many images a prompt has, which
  the processor reads from the nesting of `images` (`[[a, b]]`: one prompt, two images; a flat `[a, b]` counts as
  two single-image prompts and tiles both, 72 tokens). Non-square images give fewer AnyRes features (unpadding).
- Extra per-token input: none.
- Grounding: none documented for LLaVA-OneVision (the paper and model cards describe no box format). Its LLaVA-1.5
  ancestry trained referring data as plain-text boxes `[x1, y1, x2, y2]` normalised to [0, 1] (LLaVA-1.5 paper,
  "Improved Baselines with Visual Instruction Tuning", and its data), which may carry over but is not documented.

Processor: `LlavaOnevisionProcessor` always takes a video processor (torchvision), so this module defines
`LlavaOnevisionImageOnlyProcessor` (images and text only), registered with `AutoProcessor` on import.

Tiny-model differences from the real checkpoint: 112 px images with 28 px SigLIP patches (4x4 = 16 base features;
real: 384 px, 14 px patches, 729 features per tile) and a single AnyRes grid point [[112, 112]] (real: 36 grid
points up to 2304 px), so one image always gives 36 tokens.
"""

from __future__ import annotations

from transformers import (
    AutoModelForImageTextToText,
    LlavaOnevisionConfig,
    LlavaOnevisionImageProcessorPil,
)
from transformers.models.llava_onevision.processing_llava_onevision import LlavaOnevisionProcessor
from transformers.processing_utils import ProcessorMixin

from mmrft.models.builders import split_at_special, token_ids
from mmrft.models.processors import register_processor
from mmrft.models.tiny import TinySize, text_config, train_bpe_tokenizer, vision_config

MODEL_TYPE = "llava_onevision"
VISION_TOWER = ("vision_tower",)
PROJECTOR = ("multi_modal_projector", "image_newline")
LANGUAGE_MODEL = ("language_model", "lm_head")
ENDOFTEXT, IM_START, IM_END, IMAGE, VIDEO = "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"
SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END, IMAGE, VIDEO]
MEDIA_TOKENS = [IMAGE, VIDEO]

# The chat template of the llava-hf LLaVA-OneVision checkpoints, verbatim as written by transformers'
# convert_llava_onevision_weights_to_hf.py (no default system prompt). It renders only list `content` (a string
# content, e.g. a system prompt given as a plain string, is silently dropped).
CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n'}}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\\n' }}{% endfor %}"
    "{# Render all video then #}{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>\\n' }}{% endfor %}"
    "{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] }}{% endgeneration %}{% endfor %}{% endif %}"
    "{{'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SCAFFOLD = ["<|im_start|>user\n<image>\n", "<|im_end|>\n<|im_start|>assistant\n"]
PATCH = 28


class LlavaOnevisionImageOnlyProcessor(LlavaOnevisionProcessor):
    """`LlavaOnevisionProcessor` without the video processor (images and text only; no torchvision needed)."""

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        num_image_tokens=None,
        vision_feature_select_strategy=None,
        chat_template=None,
        image_token="<image>",
        video_token="<video>",
        vision_aspect_ratio="anyres_max_9",
        **kwargs,
    ):
        # Same bookkeeping as LlavaOnevisionProcessor.__init__ (transformers 5.23), minus the video processor.
        self.num_image_tokens = num_image_tokens
        self.vision_feature_select_strategy = vision_feature_select_strategy
        self.image_token = getattr(tokenizer, "image_token", None) or image_token
        self.video_token = getattr(tokenizer, "video_token", None) or video_token
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        self.vision_aspect_ratio = vision_aspect_ratio
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)


register_processor(LlavaOnevisionImageOnlyProcessor)


def build_tokenizer(corpus: list[str], vocab_size: int = 512):
    return train_bpe_tokenizer(
        split_at_special(corpus, SPECIAL_TOKENS), special_tokens=SPECIAL_TOKENS,
        scaffold=split_at_special(SCAFFOLD, SPECIAL_TOKENS), chat_template=CHAT_TEMPLATE,
        eos=IM_END, pad=ENDOFTEXT, vocab_size=vocab_size,
    )


def features_per_side(size: TinySize) -> int:
    if size.image_size % PATCH:
        raise ValueError(f"image_size {size.image_size} is not a multiple of the {PATCH} px patch")
    return size.image_size // PATCH


def build_config(size: TinySize, tokenizer) -> LlavaOnevisionConfig:
    ids = token_ids(tokenizer, SPECIAL_TOKENS)
    text = text_config(
        size, len(tokenizer), bos=ids[ENDOFTEXT], eos=ids[IM_END], pad=ids[ENDOFTEXT],
        model_type="qwen2",
        tie_word_embeddings=True,
    )
    vision = vision_config(
        size,
        model_type="siglip_vision_model",
        image_size=size.image_size,
        patch_size=PATCH,
        vision_use_head=False,
    )
    features_per_side(size)
    return LlavaOnevisionConfig(
        text_config=text,
        vision_config=vision,
        image_token_index=ids[IMAGE],
        video_token_index=ids[VIDEO],
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        vision_aspect_ratio="anyres_max_9",
        image_grid_pinpoints=[[size.image_size, size.image_size]],
        tie_word_embeddings=True,
    )


def build_processor(size: TinySize, tokenizer, config: LlavaOnevisionConfig) -> LlavaOnevisionImageOnlyProcessor:
    image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": size.image_size, "width": size.image_size},
        image_grid_pinpoints=config.image_grid_pinpoints,
        image_mean=[0.5, 0.5, 0.5],  # llava-onevision preprocessor_config.json (SigLIP normalisation)
        image_std=[0.5, 0.5, 0.5],
    )
    return LlavaOnevisionImageOnlyProcessor(
        image_processor=image_processor, tokenizer=tokenizer, num_image_tokens=features_per_side(size) ** 2,
        vision_feature_select_strategy=config.vision_feature_select_strategy, chat_template=CHAT_TEMPLATE,
        vision_aspect_ratio=config.vision_aspect_ratio,
    )


def build(size: TinySize, corpus: list[str], vocab_size: int = 512):
    tokenizer = build_tokenizer(corpus, vocab_size)
    config = build_config(size, tokenizer)
    model = AutoModelForImageTextToText.from_config(config)
    return model, build_processor(size, tokenizer, config)
