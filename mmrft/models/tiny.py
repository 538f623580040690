"""Build tiny, randomly initialised models of real VLM architectures, fully offline.

The output directory is an ordinary Hugging Face checkpoint: `config.json` + `model.safetensors`, a tokenizer trained
here with `tokenizers` (byte-level BPE, every special token of the family, the family's real chat template), and the
image processor config. `AutoModelForImageTextToText.from_pretrained(out)` and `AutoProcessor.from_pretrained(out)`
load it (after `import mmrft`, which registers the image-only processor class; see `processors.py`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForImageTextToText, PreTrainedTokenizerFast

from mmrft import atomic
from mmrft.models.processors import IMAGE_ONLY_PROCESSORS

# Qwen2's special tokens (the ids of the real tokenizer differ; the names are what the processor and model use).
QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>",
]
# Reasoning tags as ordinary added tokens (as in Qwen3's tokenizer): shorter completions, nothing special-cased.
REASONING_TOKENS = ["<think>", "</think>", "<answer>", "</answer>"]

# Qwen2's pre-tokenizer split: digits one at a time, words with an optional leading space or punctuation.
QWEN_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# The chat template shipped with Qwen2-VL / Qwen2.5-VL instruct checkpoints.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Text every prompt carries (the chat template's scaffold); repeated in training so BPE merges it into few tokens.
CHAT_SCAFFOLD = [
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n",
    "<|vision_start|><|image_pad|><|vision_end|>",
    "<|im_end|>\n<|im_start|>assistant\n",
]
SCAFFOLD_WEIGHT = 200
BASE_CORPUS = [
    "<think>count the objects</think><answer>3</answer>",
    "The answer is 42. Answer: B. How many? Which one is larger? What is the sum? Where is it? yes no",
    "0 1 2 3 4 5 6 7 8 9 10 [12, 34, 56, 78] A. B. C. D. (A) (B) + - * / = % , . ? ! : ;",
]


@dataclass(frozen=True)
class TinySize:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vision_depth: int
    vision_embed: int
    vision_heads: int
    image_size: int  # the processor resizes every image to about this many pixels on a side


SIZES = {
    # ~2.4 M parameters; 112x112 images -> 16 merged image tokens.
    "tiny": TinySize(192, 4, 4, 2, 512, 4, 96, 4, 112),
    # ~30 M parameters; 224x224 images -> 64 merged image tokens.
    "small": TinySize(512, 8, 8, 4, 1536, 8, 256, 8, 224),
}
# Qwen2-VL / Qwen2.5-VL are built here; the other families in `mmrft.models.builders` (see ARCHS below).
QWEN_ARCHS = ("qwen2_vl", "qwen2_5_vl")


def train_tokenizer(corpus: Iterable[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer with Qwen2's split pattern and special tokens on `corpus`.

    Frequent strings become few tokens: repeat in `corpus` whatever every prompt carries (e.g. the instruction)."""
    return train_bpe_tokenizer(
        corpus, special_tokens=QWEN_SPECIAL_TOKENS, scaffold=CHAT_SCAFFOLD, chat_template=QWEN2_VL_CHAT_TEMPLATE,
        eos="<|im_end|>", pad="<|endoftext|>", vocab_size=vocab_size,
    )


def train_bpe_tokenizer(
    corpus: Iterable[str],
    *,
    special_tokens: list[str],
    scaffold: list[str],
    chat_template: str,
    eos: str,
    pad: str,
    bos: str | None = None,
    vocab_size: int = 512,
    extra_tokens: list[str] = REASONING_TOKENS,
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer for any family: `special_tokens` (the family's control and media tokens, all
    in the vocabulary as single ids), the family's `chat_template`, trained on `scaffold` (the template's fixed
    text, weighted so it merges into few tokens) + `corpus`. `eos` ends an assistant turn (generation stops
    there), `pad` pads; both must be among `special_tokens`."""
    for name, token in (("eos", eos), ("pad", pad), ("bos", bos)):
        if token is not None and token not in special_tokens:
            raise ValueError(f"{name} token {token!r} is not among special_tokens")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(scaffold) * SCAFFOLD_WEIGHT + list(BASE_CORPUS) + list(corpus), trainer)
    named = {eos, pad} | ({bos} if bos else set())
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=eos,
        pad_token=pad,
        bos_token=bos,
        additional_special_tokens=[t for t in special_tokens if t not in named],
        model_max_length=32768,
        padding_side="left",
    )
    fast.add_tokens(list(extra_tokens))
    fast.chat_template = chat_template
    return fast


def _rope_section(head_dim: int) -> list[int]:
    # M-RoPE splits the rotary half-dimension into (temporal, height, width) sections; Qwen uses 1:1.5:1.5.
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def text_config(size: TinySize, vocab_size: int, *, bos: int, eos: int, pad: int, **extra) -> dict:
    """The decoder part of a tiny config, as every family's `text_config` spells it; `extra` adds or overrides
    family-specific keys (model_type, head_dim, rope parameters, sliding windows, ...)."""
    return dict(
        vocab_size=vocab_size,
        hidden_size=size.hidden,
        intermediate_size=size.intermediate,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        num_key_value_heads=size.kv_heads,
        max_position_embeddings=4096,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
        **extra,
    )


def vision_config(size: TinySize, **extra) -> dict:
    """The vision-tower part of a tiny config for ViT/SigLIP-style towers (`extra`: image and patch size, model
    type and other family-specific keys)."""
    return dict(
        hidden_size=size.vision_embed,
        intermediate_size=size.vision_embed * 2,
        num_hidden_layers=size.vision_depth,
        num_attention_heads=size.vision_heads,
        **extra,
    )


def build_config(arch: str, size: TinySize, tokenizer: PreTrainedTokenizerFast):
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    head_dim = size.hidden // size.heads
    text = text_config(
        size, len(tokenizer), bos=ids["<|endoftext|>"], eos=ids["<|im_end|>"], pad=ids["<|endoftext|>"],
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": _rope_section(head_dim)},
        tie_word_embeddings=True,
    )
    common = dict(
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    if arch == "qwen2_vl":
        from transformers import Qwen2VLConfig

        vision = dict(
            depth=size.vision_depth, embed_dim=size.vision_embed, hidden_size=size.hidden, num_heads=size.vision_heads,
            mlp_ratio=2, patch_size=14, spatial_merge_size=2, temporal_patch_size=2, in_channels=3,
        )
        return Qwen2VLConfig(text_config=text, vision_config=vision, **common)
    if arch == "qwen2_5_vl":
        from transformers import Qwen2_5_VLConfig

        vision = dict(
            depth=size.vision_depth, hidden_size=size.vision_embed, out_hidden_size=size.hidden,
            intermediate_size=size.vision_embed * 2, num_heads=size.vision_heads, patch_size=14,
            spatial_merge_size=2, temporal_patch_size=2, in_channels=3, window_size=56,
            fullatt_block_indexes=[size.vision_depth - 1],
        )
        return Qwen2_5_VLConfig(text_config=text, vision_config=vision, **common)
    raise ValueError(f"unknown arch {arch!r}; expected one of {', '.join(QWEN_ARCHS)}")


def build_processor(arch: str, image_size: int, tokenizer: PreTrainedTokenizerFast):
    """The family's image-only processor, resizing every image to about `image_size` pixels on a side."""
    from transformers import Qwen2VLImageProcessorPil

    pixels = image_size * image_size
    image_processor = Qwen2VLImageProcessorPil(min_pixels=pixels, max_pixels=pixels)
    return IMAGE_ONLY_PROCESSORS[arch](
        image_processor=image_processor, tokenizer=tokenizer, chat_template=QWEN2_VL_CHAT_TEMPLATE
    )


def make_tiny_model(
    out: str | os.PathLike,
    arch: str | None = None,
    size: str = "tiny",
    corpus: Iterable[str] = (),
    seed: int = 0,
    vocab_size: int = 512,
    overwrite: bool = False,
) -> Path:
    """Write a tiny random `arch` model (any of `ARCHS`, a transformers `model_type`) with processor to `out`;
    returns the path (`arch` None: qwen2_vl, or a real size's own family). `size`: a key of `SIZES` (toy sizes,
    fp32), or of `mmrft.models.sizes.REAL_SIZES` (a real checkpoint's published shapes with the tiny tokenizer, bf16;
    `arch` must be that checkpoint's).

    The directory is written under a temporary name and renamed, so a crash never leaves a half-written model.
    """
    from mmrft.models.sizes import REAL_SIZES, build_real_config

    if arch is not None and arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; expected one of {', '.join(ARCHS)}")
    if size not in SIZES and size not in REAL_SIZES:
        raise ValueError(f"unknown size {size!r}; expected one of {', '.join([*SIZES, *REAL_SIZES])}")
    real = REAL_SIZES.get(size)
    if arch is None:  # the real size's own family, else Qwen2-VL
        arch = real.arch if real is not None else "qwen2_vl"
    if real is not None and arch != real.arch:
        raise ValueError(f"size {size!r} is a {real.arch} configuration ({real.checkpoint}); got arch {arch!r}")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty (pass overwrite=True / --overwrite to replace it)")
    torch.manual_seed(seed)
    if real is not None:  # published shapes, the tiny tokenizer; built directly in bf16 (no fp32 copy)
        tokenizer = train_tokenizer(corpus, vocab_size=vocab_size)
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
        model = AutoModelForImageTextToText.from_config(build_real_config(size, tokenizer, ids),
                                                        dtype=getattr(torch, real.dtype))
        processor = build_processor(arch, real.image_size, tokenizer)
    elif arch in QWEN_ARCHS:
        spec = SIZES[size]
        tokenizer = train_tokenizer(corpus, vocab_size=vocab_size)
        config = build_config(arch, spec, tokenizer)
        model = AutoModelForImageTextToText.from_config(config)
        processor = build_processor(arch, spec.image_size, tokenizer)
    else:
        from mmrft.models.builders import BUILDERS

        model, processor = BUILDERS[arch](SIZES[size], list(corpus), vocab_size)
    # generation stops at the family's end-of-turn token and pads with its pad token
    model.generation_config.eos_token_id = model.config.text_config.eos_token_id
    model.generation_config.pad_token_id = model.config.text_config.pad_token_id

    with atomic.directory(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
        (tmp / "mmrft_tiny.json").write_text(json.dumps({"arch": arch, "size": size, "seed": seed}, indent=2))
    return out


# Every family `make_tiny_model` builds: the two above and those of `mmrft.models.builders` (its BUILDERS keys; a
# test keeps the two lists equal; they are not imported here because the builders import this module).
ARCHS = QWEN_ARCHS + ("qwen3_vl", "gemma3", "idefics3", "mistral3", "llava_onevision", "internvl", "qwen2_audio")
