"""Idefics3 (Idefics3-8B-Llama3 style; SmolVLM is the same architecture): SigLIP-like vision encoder + pixel-shuffle
connector + Llama text model.

- model_type: `idefics3` (`Idefics3ForConditionalGeneration`). Not `smolvlm`: `SmolVLMProcessor` needs a video
  processor (torchvision) and the `num2words` package; `Idefics3Processor` needs neither and the models are the same.
- Vision tower: module names containing `vision_model` (`model.vision_model`). Projector: `connector`
  (`model.connector.modality_projection`: pixel shuffle by `scale_factor` + one linear layer). Language model:
  `text_model`, head `lm_head` (tied to the input embeddings here). Note `connector` is not in
  `mmrft.models.load.VISION_MODULE_KEYS`.
- Media tokens never to sample: `<image>` (`config.image_token_id`; the chat template writes one per image, the
  processor expands it to `<fake_token_around_image><global-img>` + `<image>` x `image_seq_len` +
  `<fake_token_around_image>`), `<fake_token_around_image>`, `<global-img>`, and the 36 `<row_R_col_C>` tile tags
  (only emitted with image splitting, which is off here).
- Processor output keys: `input_ids`, `attention_mask`, `pixel_values` [batch, max_images_per_prompt, 3, 112, 112]
  (a per-prompt image axis; prompts with fewer images are padded with all-zero images, which the model skips),
  `pixel_attention_mask` [batch, max_images_per_prompt, 112, 112]. With splitting on (the real default) each image
  would add rows x cols tiles along the image axis. No grid tensor.
- Extra per-token input: none (the processor can return `mm_token_type_ids` on request; the model does not use it).
- Grounding: none documented (the Idefics3 paper and the Idefics3-8B-Llama3 / SmolVLM model cards describe no box
  format).

Quirk: `Idefics3Processor.__init__` calls `tokenizer.add_special_tokens({"additional_special_tokens": [...3 tokens]})`,
which in transformers 5 replaces the tokenizer's list of extra special tokens, so after loading
`tokenizer.all_special_tokens` lists only bos/eos/pad and `<fake_token_around_image>`, `<image>`,
`<end_of_utterance>`. The other special tokens (`<global-img>`, `<row_R_col_C>`, `<|end_of_text|>`) stay single
special ids (`decode(..., skip_special_tokens=True)` drops them); use `MEDIA_TOKENS`, not `all_special_tokens`.

Tiny-model differences from the real checkpoint: 112 px images without splitting, 16 image tokens (8x8 patches of
14 px, pixel-shuffled 2x2) instead of 169 per tile; the tokenizer's eos is `<end_of_utterance>` (end of turn);
the Llama-3 special-token set is cut to the tokens the template and processor use.
"""

from __future__ import annotations

from transformers import AutoModelForImageTextToText, Idefics3Config, Idefics3ImageProcessorPil, Idefics3Processor

from mmrft.models.builders import split_at_special, token_ids
from mmrft.models.tiny import TinySize, text_config, train_bpe_tokenizer, vision_config

MODEL_TYPE = "idefics3"
VISION_TOWER = ("vision_model",)
PROJECTOR = ("connector",)
LANGUAGE_MODEL = ("text_model", "lm_head")
BOS, EOT, PAD = "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>"
FAKE, IMAGE, GLOBAL, END_UTT = "<fake_token_around_image>", "<image>", "<global-img>", "<end_of_utterance>"
ROW_COL = [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
SPECIAL_TOKENS = [BOS, EOT, PAD, FAKE, IMAGE, END_UTT, GLOBAL, *ROW_COL]
MEDIA_TOKENS = [IMAGE, FAKE, GLOBAL, *ROW_COL]

# The chat template shipped with HuggingFaceM4/Idefics3-8B-Llama3 (processor chat_template), verbatim. (SmolVLM's
# differs only in starting with `<|im_start|>` and using `| capitalize`.) It silently drops a string `content`
# (it indexes `content[0]['type']`): messages must carry a list of {"type": ...} parts.
CHAT_TEMPLATE = (
    "<|begin_of_text|>{% for message in messages %}{{message['role'].capitalize()}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
SCAFFOLD = [
    "<|begin_of_text|>User:<image>",
    "<|begin_of_text|>User: ",
    "<end_of_utterance>\nAssistant:",
    "<end_of_utterance>\nAssistant: ",
    "<fake_token_around_image><global-img>",
]
PATCH = 14
SCALE_FACTOR = 2  # pixel shuffle: 8x8 patches -> 4x4 = 16 tokens per image


def build_tokenizer(corpus: list[str], vocab_size: int = 512):
    return train_bpe_tokenizer(
        split_at_special(corpus, SPECIAL_TOKENS), special_tokens=SPECIAL_TOKENS,
        scaffold=split_at_special(SCAFFOLD, SPECIAL_TOKENS), chat_template=CHAT_TEMPLATE,
        eos=END_UTT, pad=PAD, bos=BOS, vocab_size=vocab_size,
    )


def image_seq_len(size: TinySize) -> int:
    patches = size.image_size // PATCH
    if patches % SCALE_FACTOR:
        raise ValueError(
            f"image_size {size.image_size}: {patches} patches a side do not pixel-shuffle by {SCALE_FACTOR}"
        )
    return (patches // SCALE_FACTOR) ** 2


def build_config(size: TinySize, tokenizer) -> Idefics3Config:
    ids = token_ids(tokenizer, SPECIAL_TOKENS)
    text = text_config(
        size, len(tokenizer), bos=ids[BOS], eos=ids[END_UTT], pad=ids[PAD],
        model_type="llama",
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
    )
    vision = vision_config(
        size,
        image_size=size.image_size,
        patch_size=PATCH,
    )
    image_seq_len(size)  # validates the geometry
    return Idefics3Config(
        text_config=text,
        vision_config=vision,
        scale_factor=SCALE_FACTOR,
        image_token_id=ids[IMAGE],
        pad_token_id=ids[PAD],
        tie_word_embeddings=True,
    )


def build_processor(size: TinySize, tokenizer) -> Idefics3Processor:
    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=False,
        size={"longest_edge": size.image_size},
        max_image_size={"longest_edge": size.image_size},
        image_mean=[0.5, 0.5, 0.5],  # Idefics3-8B-Llama3 preprocessor_config.json
        image_std=[0.5, 0.5, 0.5],
    )
    return Idefics3Processor(
        image_processor=image_processor, tokenizer=tokenizer, image_seq_len=image_seq_len(size),
        chat_template=CHAT_TEMPLATE,
    )


def build(size: TinySize, corpus: list[str], vocab_size: int = 512):
    tokenizer = build_tokenizer(corpus, vocab_size)
    config = build_config(size, tokenizer)
    model = AutoModelForImageTextToText.from_config(config)
    return model, build_processor(size, tokenizer)
