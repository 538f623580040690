"""A checkpoint's shapes for `mmrft plan`: parameters counted exactly on the meta device (no weights loaded), the
decoder's and the vision tower's widths and depths, and an image's token count, from `config.json` and the
processor's config."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelShape:
    """What the plan needs to know about a checkpoint (counted from its config on the meta device)."""

    model_type: str
    params: int
    tower_params: int
    lora_params: int
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    vision_layers: int = 0
    vision_hidden: int = 0
    vision_intermediate: int = 0
    vision_patch_dim: int = 0  # values per pixel patch: channels * temporal patch * patch^2


def _text_config(config):
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def model_shape(path: str | Path, lora_targets: list[str] | None = None, lora_r: int = 0,
                language_only: bool = True) -> ModelShape:
    """Count `path`'s parameters exactly by building the model from its `config.json` on the meta device."""
    import torch
    from transformers import AutoConfig

    from mmrft.models.families import family_of
    from mmrft.models.load import AUTO_MODEL, check_model_dir, lora_targets as targets_of

    config = AutoConfig.from_pretrained(str(check_model_dir(str(path))))
    with torch.device("meta"):
        model = AUTO_MODEL.from_config(config)
    params = sum(p.numel() for p in model.parameters())
    keys = family_of(model).tower_keys
    tower = sum(p.numel() for n, p in model.named_parameters() if any(k in n for k in keys))
    lora = 0
    if lora_targets and lora_r:
        spec = targets_of(model, lora_targets, language_only)
        for name, mod in model.named_modules():
            hit = (re.fullmatch(spec, name) is not None if isinstance(spec, str)
                   else any(name == t or name.endswith("." + t) for t in spec))
            if hit and isinstance(mod, torch.nn.Linear):
                lora += lora_r * (mod.in_features + mod.out_features)
    t = _text_config(config)
    heads = t.num_attention_heads
    head_dim = getattr(t, "head_dim", None) or t.hidden_size // heads
    v = getattr(config, "vision_config", None)
    vision_width = getattr(v, "embed_dim", None) or getattr(v, "hidden_size", None) or 0
    return ModelShape(
        model_type=config.model_type, params=params, tower_params=tower, lora_params=lora,
        layers=t.num_hidden_layers, hidden=t.hidden_size, intermediate=t.intermediate_size, heads=heads,
        kv_heads=getattr(t, "num_key_value_heads", None) or heads, head_dim=head_dim, vocab=t.vocab_size,
        vision_layers=getattr(v, "depth", None) or getattr(v, "num_hidden_layers", 0) or 0,
        # the tower's own width: Qwen2-VL's `embed_dim` (its `hidden_size` is the merger's output), else `hidden_size`
        vision_hidden=vision_width,
        vision_intermediate=getattr(v, "intermediate_size", 0) or int(vision_width * (getattr(v, "mlp_ratio", 0) or 0)),
        vision_patch_dim=_patch_dim(v),
    )


def _patch_dim(v) -> int:
    """channels * temporal patch * patch^2 of a Qwen-VL-style tower config (0 when it names no patch size)."""
    patch = getattr(v, "patch_size", None)
    if not isinstance(patch, int):
        return 0
    return (getattr(v, "in_channels", None) or getattr(v, "num_channels", None) or 3) * \
        (getattr(v, "temporal_patch_size", None) or 1) * patch * patch


def estimated_image_tokens(path: str | Path, max_pixels: int | None) -> int:
    """One image's tokens at `max_pixels` (data.max_pixels, else the processor's max_pixels): pixels / (patch^2 *
    merge^2), as the Qwen-VL processors count; 256 when the processor's config names no patch and merge size."""
    cfg: dict = {}
    for name in ("preprocessor_config.json", "processor_config.json"):
        f = Path(path) / name
        if f.is_file():
            cfg = json.loads(f.read_text())
            cfg = cfg.get("image_processor", cfg)
            break
    pixels = max_pixels or cfg.get("max_pixels") or (cfg.get("size") or {}).get("longest_edge")
    patch, merge = cfg.get("patch_size"), cfg.get("merge_size")
    if pixels and patch and merge:
        return math.ceil(int(pixels) / (patch * patch * merge * merge))
    return 256
