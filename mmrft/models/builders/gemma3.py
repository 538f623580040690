"""Gemma 3 (gemma-3-4b-it style): SigLIP vision tower + average-pool projector + Gemma 3 text model.

- model_type: `gemma3` (`Gemma3ForConditionalGeneration`).
- Vision tower: module names containing `vision_tower` (SigLIP). Projector: `multi_modal_projector`
  (RMSNorm + average pool to `mm_tokens_per_image` + one projection matrix). Language model: `language_model`,
  head `lm_head` (tied to the input embeddings).
- Media tokens never to sample: `<start_of_image>` (the placeholder the chat template writes; the processor expands
  it to `\\n\\n<start_of_image>` + `<image_soft_token>` x `mm_tokens_per_image` + `<end_of_image>\\n\\n`),
  `<image_soft_token>` (`config.image_token_id`: the rows image features are scattered into), `<end_of_image>`.
- Processor output keys: `input_ids`, `attention_mask`, `token_type_ids` (1 on `<image_soft_token>` positions),
  `pixel_values` [num_images_in_batch, 3, 112, 112]: one row per image, images of all prompts concatenated in prompt
  order (pan-and-scan crops would add rows; it is off). No grid tensor.
- Extra per-token input: `token_type_ids`. With it, the image tokens of one image attend to each other
  bidirectionally (the real model's training mask); without it attention is plain causal, so logits differ. Pass it
  to forward and to the first step of generate (the model drops it after the prefill itself).
- Grounding: none documented. The Gemma 3 technical report and the gemma-3-4b-it model card describe no box or point
  output format (PaliGemma's `<locDDDD>` tokens are not part of Gemma 3's chat use).

Tiny-model differences from the real checkpoint: 112 px images, 16 image tokens (8x8 SigLIP patches of 14 px pooled
2x2) instead of 256; the tokenizer's eos is `<end_of_turn>` (the real tokenizer's eos is `<eos>`, and its
generation_config stops on both); the projection matrix is initialised N(0, 0.02) instead of transformers' zeros,
otherwise the vision tower would get no gradient and images no influence in a fresh random model.
"""

from __future__ import annotations

import torch
from transformers import AutoModelForImageTextToText, Gemma3Config, Gemma3ImageProcessorPil, Gemma3Processor

from mmrft.models.builders import set_named_tokens, split_at_special, token_ids
from mmrft.models.tiny import TinySize, text_config, train_bpe_tokenizer, vision_config

MODEL_TYPE = "gemma3"
VISION_TOWER = ("vision_tower",)
PROJECTOR = ("multi_modal_projector",)
LANGUAGE_MODEL = ("language_model", "lm_head")
BOS, EOS, PAD, UNK, MASK = "<bos>", "<eos>", "<pad>", "<unk>", "<mask>"
START_TURN, END_TURN = "<start_of_turn>", "<end_of_turn>"
BOI, EOI, IMAGE = "<start_of_image>", "<end_of_image>", "<image_soft_token>"
SPECIAL_TOKENS = [PAD, EOS, BOS, UNK, MASK, "[multimodal]", START_TURN, END_TURN, BOI, EOI, IMAGE]
MEDIA_TOKENS = [BOI, IMAGE, EOI]

# The chat template shipped with gemma-3-4b-it (tokenizer_config.json / chat_template.json), verbatim.
CHAT_TEMPLATE = (
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}\n"
    "    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}\n"
    "    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    "    {%- set first_user_prefix = \"\" -%}\n"
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    "        {%- set role = \"model\" -%}\n"
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n"
    "        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n"
    "                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n"
    "                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "    {%- else -%}\n"
    "        {{ raise_exception(\"Invalid content type\") }}\n"
    "    {%- endif -%}\n"
    "    {{ '<end_of_turn>\\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\\n'}}\n"
    "{%- endif -%}\n"
)
SCAFFOLD = [
    "<bos><start_of_turn>user\n",
    "<end_of_turn>\n<start_of_turn>model\n",
    "\n\n<start_of_image>",
    "<end_of_image>\n\n",
]
PATCH = 14
MM_TOKENS_PER_IMAGE = 16  # 112 px / 14 = 8x8 patches, average-pooled 2x2 -> 4x4


def build_tokenizer(corpus: list[str], vocab_size: int = 512):
    tok = train_bpe_tokenizer(
        split_at_special(corpus, SPECIAL_TOKENS), special_tokens=SPECIAL_TOKENS,
        scaffold=split_at_special(SCAFFOLD, SPECIAL_TOKENS), chat_template=CHAT_TEMPLATE,
        eos=END_TURN, pad=PAD, bos=BOS, vocab_size=vocab_size,
    )
    tok.unk_token = UNK
    set_named_tokens(tok, boi_token=BOI, eoi_token=EOI, image_token=IMAGE)
    return tok


def build_config(size: TinySize, tokenizer) -> Gemma3Config:
    ids = token_ids(tokenizer, SPECIAL_TOKENS)
    head_dim = size.hidden // size.heads
    text = text_config(
        size, len(tokenizer), bos=ids[BOS], eos=ids[END_TURN], pad=ids[PAD],
        head_dim=head_dim,
        query_pre_attn_scalar=head_dim,
        sliding_window=512,
        # Gemma 3 interleaves 5 local (sliding-window) layers per global one; keep both kinds.
        layer_types=["sliding_attention"] * (size.layers - 1) + ["full_attention"],
        tie_word_embeddings=True,
    )
    vision = vision_config(
        size,
        model_type="siglip_vision_model",
        image_size=size.image_size,
        patch_size=PATCH,
        vision_use_head=False,
        layer_norm_eps=1e-6,
    )
    patches = size.image_size // PATCH
    tokens = min(MM_TOKENS_PER_IMAGE, patches * patches)
    if patches % int(tokens**0.5):
        raise ValueError(f"image_size {size.image_size}: {patches} patches a side do not pool to {tokens} tokens")
    return Gemma3Config(
        text_config=text,
        vision_config=vision,
        mm_tokens_per_image=tokens,
        boi_token_index=ids[BOI],
        eoi_token_index=ids[EOI],
        image_token_index=ids[IMAGE],
        tie_word_embeddings=True,
    )


def build_processor(size: TinySize, tokenizer, config: Gemma3Config) -> Gemma3Processor:
    image_processor = Gemma3ImageProcessorPil(
        size={"height": size.image_size, "width": size.image_size},
        image_mean=[0.5, 0.5, 0.5],  # gemma-3 preprocessor_config.json
        image_std=[0.5, 0.5, 0.5],
        do_pan_and_scan=False,
    )
    return Gemma3Processor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE,
        image_seq_length=config.mm_tokens_per_image,
    )


def build(size: TinySize, corpus: list[str], vocab_size: int = 512):
    tokenizer = build_tokenizer(corpus, vocab_size)
    config = build_config(size, tokenizer)
    model = AutoModelForImageTextToText.from_config(config)
    with torch.no_grad():
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(0.0, config.initializer_range)
    return model, build_processor(size, tokenizer, config)
