"""Load a policy and its processor from a local checkpoint directory, the same way for a tiny model or Qwen2.5-VL-7B."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from mmrft.config import ModelConfig
from mmrft.errors import ConfigError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Module-name fragments of the vision tower and projector across the families we load (Qwen2-VL: `visual`).
VISION_MODULE_KEYS = ("visual", "vision_tower", "vision_model", "multi_modal_projector", "mm_projector")


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def check_model_dir(path: str) -> Path:
    if not path:
        raise ConfigError("model.path is empty: set it to a local checkpoint directory (see `mmrft make-tiny-model`)")
    p = Path(path)
    if not p.is_dir():
        raise ConfigError(f"model.path: {p} is not a directory")
    if not (p / "config.json").is_file():
        raise ConfigError(f"model.path: {p} has no config.json; expected a Hugging Face checkpoint directory")
    return p


def load_processor(path: str):
    """`AutoProcessor` with left padding (generation appends completions at the right)."""
    # Checkpoints are read from disk only; a missing file must fail here, not trigger a download.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    processor = AutoProcessor.from_pretrained(str(check_model_dir(path)))
    processor.tokenizer.padding_side = "left"
    if processor.tokenizer.pad_token is None:
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    return processor


def freeze_vision(model: torch.nn.Module) -> int:
    """Turn off gradients for the vision tower and projector; returns how many tensors were frozen."""
    n = 0
    for name, param in model.named_parameters():
        if any(key in name for key in VISION_MODULE_KEYS):
            param.requires_grad_(False)
            n += 1
    return n


def load_policy(cfg: ModelConfig, device: torch.device | str = "cpu"):
    """Returns (model, processor). LoRA (peft) wraps the model when `cfg.lora.enabled`."""
    path = check_model_dir(cfg.path)
    if cfg.dtype not in DTYPES:
        raise ConfigError(f"model.dtype: {cfg.dtype!r} is not one of {', '.join(DTYPES)}")
    processor = load_processor(str(path))
    model = AutoModelForImageTextToText.from_pretrained(str(path), dtype=DTYPES[cfg.dtype])
    model.to(device)
    if cfg.freeze_vision:
        freeze_vision(model)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if cfg.lora.enabled:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=cfg.lora.r,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=list(cfg.lora.target_modules),
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    return model, processor


def media_token_ids(processor) -> list[int]:
    """Ids of media placeholder tokens: a sampled one breaks the next forward ("image features and tokens do not
    match"), so generation suppresses them."""
    tok = processor.tokenizer
    names = ["<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>"]
    names += [getattr(processor, "image_token", ""), getattr(processor, "video_token", "")]
    ids = set()
    for name in names:
        if not name:
            continue
        i = tok.convert_tokens_to_ids(name)
        if i is not None and i != tok.unk_token_id:
            ids.add(int(i))
    return sorted(ids)
