"""Mistral 3 (Mistral-Small-3.1-24B-Instruct-2503 style): Pixtral vision encoder + patch-merger projector + Mistral
text model.

- model_type: `mistral3` (`Mistral3ForConditionalGeneration`).
- Vision tower: module names containing `vision_tower` (Pixtral, 2-D RoPE, native resolution). Projector:
  `multi_modal_projector` (RMSNorm + 2x2 patch merger + 2-layer MLP). Language model: `language_model`, head `lm_head`
  (tied to the input embeddings here).
- Media tokens never to sample: `[IMG]` (`config.image_token_id`; the chat template writes one per image, the
  processor expands it row by row: `[IMG]` x cols + `[IMG_BREAK]` per row, the last row's break replaced by
  `[IMG_END]`), `[IMG_BREAK]`, `[IMG_END]`.
- Processor output keys: `input_ids`, `attention_mask`, `pixel_values` [num_images_in_batch, 3, H, W]: one row per
  image, images of all prompts concatenated in prompt order, zero-padded to the largest H, W in the batch;
  `image_sizes` [num_images_in_batch, 2] the real (height, width) of each row, which the model needs. Images are only
  shrunk (longest edge to at most 112 px here) and rounded up to a multiple of 28 px (patch 14 x merge 2), aspect
  ratio kept, so the number of image tokens depends on the image size: a 112x112 image gives 4x4 = 16 `[IMG]`
  (+ 3 `[IMG_BREAK]` + 1 `[IMG_END]`).
- Extra per-token input: none (`image_sizes` is per image, not per token).
- Grounding: none documented (the Mistral Small 3.1 and Pixtral model cards and the Pixtral report describe no box or
  point format).

Processor: transformers' `PixtralProcessor` cannot be imported without torchvision (its module imports
`image_processing_pixtral`, which imports `torchvision.transforms.v2`), so this module defines `PixtralPilProcessor`,
the same processor importing only the PIL image processor's helpers, registered with `AutoProcessor` on import.

Tiny-model differences from the real checkpoint: 112 px images at most (1540 real); the chat template drops the
default system prompt (see `CHAT_TEMPLATE`); tool tokens ([AVAILABLE_TOOLS], [TOOL_CALLS], ...) are left out.
"""

from __future__ import annotations

import numpy as np
from transformers import AutoModelForImageTextToText, Mistral3Config, PixtralImageProcessorPil
from transformers.models.pixtral.image_processing_pil_pixtral import get_resize_output_image_size
from transformers.processing_utils import MultiModalData, ProcessorMixin

from mmrft.models.builders import split_at_special, token_ids
from mmrft.models.processors import register_processor
from mmrft.models.tiny import TinySize, text_config, train_bpe_tokenizer, vision_config

MODEL_TYPE = "mistral3"
VISION_TOWER = ("vision_tower",)
PROJECTOR = ("multi_modal_projector",)
LANGUAGE_MODEL = ("language_model", "lm_head")
UNK, BOS, EOS, PAD = "<unk>", "<s>", "</s>", "<pad>"
INST, END_INST, SYS, END_SYS = "[INST]", "[/INST]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]"
IMG, IMG_BREAK, IMG_END = "[IMG]", "[IMG_BREAK]", "[IMG_END]"
SPECIAL_TOKENS = [UNK, BOS, EOS, INST, END_INST, IMG, PAD, IMG_BREAK, IMG_END, SYS, END_SYS]
MEDIA_TOKENS = [IMG, IMG_BREAK, IMG_END]

# The chat template of Mistral-Small-3.1-24B-Instruct-2503 (as in transformers' test_processing_mistral3.py, copied
# from the checkpoint), with two changes:
# - no default system prompt: the real one is ~600 characters of boilerplate that embeds today's date
#   (`strftime_now`), which would make prompts change from day to day and cannot merge into few tokens in a
#   512-token vocabulary; a system message is rendered as `[SYSTEM_PROMPT]...[/SYSTEM_PROMPT]` only when given;
# - a string system `content` is used as is (the real template tests `messages[0] is string`, always false, and
#   would take the first character of a string content).
# As in the real template, `add_generation_prompt` adds nothing: the assistant turn starts right after `[/INST]`,
# and an assistant turn ends with `eos_token` (`</s>`).
CHAT_TEMPLATE = (
    "{{- bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {%- if messages[0]['content'] is string %}\n"
    "        {%- set system_message = messages[0]['content'] %}\n"
    "    {%- else %}\n"
    "        {%- set system_message = messages[0]['content'][0]['text'] %}\n"
    "    {%- endif %}\n"
    "    {%- set loop_messages = messages[1:] %}\n"
    "    {{- '[SYSTEM_PROMPT]' + system_message + '[/SYSTEM_PROMPT]' }}\n"
    "{%- else %}\n"
    "    {%- set loop_messages = messages %}\n"
    "{%- endif %}\n"
    "{%- for message in loop_messages %}\n"
    "    {%- if message['role'] == 'user' %}\n"
    "        {%- if message['content'] is string %}\n"
    "            {{- '[INST]' + message['content'] + '[/INST]' }}\n"
    "        {%- else %}\n"
    "            {{- '[INST]' }}\n"
    "            {%- for block in message['content'] %}\n"
    "                {%- if block['type'] == 'text' %}\n"
    "                    {{- block['text'] }}\n"
    "                {%- elif block['type'] == 'image' or block['type'] == 'image_url' %}\n"
    "                    {{- '[IMG]' }}\n"
    "                {%- else %}\n"
    "                    {{- raise_exception('Only text and image blocks are supported in message content!') }}\n"
    "                {%- endif %}\n"
    "            {%- endfor %}\n"
    "            {{- '[/INST]' }}\n"
    "        {%- endif %}\n"
    "    {%- elif message['role'] == 'system' %}\n"
    "        {{- '[SYSTEM_PROMPT]' + message['content'] + '[/SYSTEM_PROMPT]' }}\n"
    "    {%- elif message['role'] == 'assistant' %}\n"
    "        {%- if message['content'] is string %}\n"
    "            {{- message['content'] + eos_token }}\n"
    "        {%- else %}\n"
    "            {{- message['content'][0]['text'] + eos_token }}\n"
    "        {%- endif %}\n"
    "    {%- else %}\n"
    "        {{- raise_exception('Only user, system and assistant roles are supported!') }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}"
)
SCAFFOLD = ["<s>[INST][IMG]", "[/INST]", "[IMG][IMG_BREAK][IMG_END]"]
PATCH = 14
SPATIAL_MERGE = 2


class PixtralPilProcessor(ProcessorMixin):
    """`PixtralProcessor` (transformers 5.23) without its torchvision import: same arguments, same token layout."""

    text_kwargs = {"return_tensors": "pt"}
    images_kwargs = {"return_tensors": "pt"}

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        patch_size: int = 16,
        spatial_merge_size: int = 1,
        chat_template=None,
        image_token="[IMG]",
        image_break_token="[IMG_BREAK]",
        image_end_token="[IMG_END]",
        **kwargs,
    ):
        super().__init__(image_processor, tokenizer, chat_template=chat_template)
        self.patch_size = patch_size
        self.spatial_merge_size = spatial_merge_size
        self.image_token = image_token
        self.image_break_token = image_break_token
        self.image_end_token = image_end_token
        self.image_token_id = tokenizer.convert_tokens_to_ids(image_token)
        self.image_break_token_id = tokenizer.convert_tokens_to_ids(image_break_token)
        self.image_end_token_id = tokenizer.convert_tokens_to_ids(image_end_token)

    @property
    def image_token_ids(self) -> list[int]:
        return [self.image_token_id, self.image_break_token_id, self.image_end_token_id]

    def _process_images(self, images, **images_kwargs):
        images_kwargs["patch_size"] = self.patch_size * self.spatial_merge_size
        return super()._process_images(images, **images_kwargs)

    def replace_image_token(self, image_inputs: dict, image_idx: int, **kwargs) -> str:
        patch = self.patch_size * self.spatial_merge_size
        height, width = image_inputs["image_sizes"][image_idx]
        rows = [[self.image_token] * (int(width) // patch) + [self.image_break_token]] * (int(height) // patch)
        tokens = [t for row in rows for t in row]
        tokens[-1] = self.image_end_token
        return "".join(tokens)

    def _get_num_multimodal_tokens(self, image_sizes=None, **kwargs):
        vision_data = {}
        if image_sizes is not None:
            images_kwargs = self._merge_kwargs(**kwargs)["images_kwargs"]
            size = images_kwargs.get("size", None) or self.image_processor.size
            patch = self.patch_size * self.spatial_merge_size
            num_image_tokens = []
            for height, width in image_sizes:
                h, w = get_resize_output_image_size(
                    np.zeros((height, width, 3)), size=(size["longest_edge"], size["longest_edge"]),
                    patch_size=(patch, patch),
                )
                num_image_tokens.append((w // patch + 1) * (h // patch))
            vision_data.update({"num_image_tokens": num_image_tokens, "num_image_patches": [1] * len(image_sizes)})
        return MultiModalData(**vision_data)

    @property
    def model_input_names(self):
        return self.tokenizer.model_input_names + self.image_processor.model_input_names + ["image_sizes"]


register_processor(PixtralPilProcessor)


def build_tokenizer(corpus: list[str], vocab_size: int = 512):
    tok = train_bpe_tokenizer(
        split_at_special(corpus, SPECIAL_TOKENS), special_tokens=SPECIAL_TOKENS,
        scaffold=split_at_special(SCAFFOLD, SPECIAL_TOKENS), chat_template=CHAT_TEMPLATE,
        eos=EOS, pad=PAD, bos=BOS, vocab_size=vocab_size,
    )
    tok.unk_token = UNK
    return tok


def build_config(size: TinySize, tokenizer) -> Mistral3Config:
    ids = token_ids(tokenizer, SPECIAL_TOKENS)
    text = text_config(
        size, len(tokenizer), bos=ids[BOS], eos=ids[EOS], pad=ids[PAD],
        model_type="mistral",
        head_dim=size.hidden // size.heads,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        sliding_window=None,
        tie_word_embeddings=True,
    )
    vision = vision_config(
        size,
        model_type="pixtral",
        head_dim=size.vision_embed // size.vision_heads,
        image_size=size.image_size,
        patch_size=PATCH,
        hidden_act="silu",
    )
    return Mistral3Config(
        text_config=text,
        vision_config=vision,
        image_token_index=ids[IMG],
        spatial_merge_size=SPATIAL_MERGE,
        vision_feature_layer=-1,
        multimodal_projector_bias=False,
        tie_word_embeddings=True,
    )


def build_processor(size: TinySize, tokenizer) -> PixtralPilProcessor:
    image_processor = PixtralImageProcessorPil(
        size={"longest_edge": size.image_size},
        patch_size={"height": PATCH, "width": PATCH},
    )
    return PixtralPilProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=PATCH, spatial_merge_size=SPATIAL_MERGE,
        chat_template=CHAT_TEMPLATE,
    )


def build(size: TinySize, corpus: list[str], vocab_size: int = 512):
    tokenizer = build_tokenizer(corpus, vocab_size)
    config = build_config(size, tokenizer)
    model = AutoModelForImageTextToText.from_config(config)
    return model, build_processor(size, tokenizer)
