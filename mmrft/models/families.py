"""Per-family facts, keyed by the checkpoint's `config.model_type`.

Loading itself goes through the transformers Auto classes for every family; what differs between families, and is
collected here, is small: which modalities the processor takes, the placeholder tokens generation must never sample,
which modules are the vision/audio tower and projector (freezing, LoRA targets), how each media tensor the processor
returns maps onto prompts (so a batch can be split by prompt and repeated per completion), and the coordinate
convention the family's real checkpoints answer grounding questions in.

Add a family with `register_family(Family(model_type=..., ...))`; an unknown `model_type` gets `GENERIC`, which infers
the media layout from tensor shapes (see `mmrft.data.collate.PromptBatch.media_spans`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mmrft.registry import Registry

# How a processor output tensor's rows map onto a batch's media:
#   "per_image" / "per_video" / "per_audio": one row per media item, in prompt order
#   "patches:<grid key>": rows are patches; media item j owns prod(grid[j]) of them (Qwen-VL's flattened layout)
#   "per_prompt": one row per prompt (e.g. Idefics3's [B, images, C, H, W])
Layout = dict[str, str]

QWEN_VL_LAYOUT: Layout = {
    "pixel_values": "patches:image_grid_thw",
    "image_grid_thw": "per_image",
    "pixel_values_videos": "patches:video_grid_thw",
    "video_grid_thw": "per_video",
    "second_per_grid_ts": "per_video",
}

# The grounding conventions a box answer can be in (see `mmrft.rewards.grounding`): fractions of the processed
# image scaled to 0..1000, or pixels of the image as the model sees it after the processor's resize.
BOX_FORMATS = ("norm1000", "model_pixel", "pixel", "norm1")


@dataclass(frozen=True)
class Family:
    model_type: str
    modalities: tuple[str, ...] = ("image",)
    # module-name fragments of the media encoders and projectors (`freeze_vision`, LoRA target selection)
    tower_keys: tuple[str, ...] = ("visual", "vision_tower", "vision_model", "multi_modal_projector", "mm_projector")
    # placeholder / delimiter tokens of media: sampling one breaks the next forward, so generation suppresses them
    placeholder_tokens: tuple[str, ...] = ()
    layout: Layout = field(default_factory=dict)
    # the convention real checkpoints of this family answer boxes in; None: no documented convention
    box_format: str | None = None
    # 3-D rotary positions (Qwen-VL M-RoPE): prompt-cache reuse goes through the model's `get_rope_index`
    mrope: bool = False
    # the audio sampling rate the family's feature extractor expects (audio families)
    audio_rate: int | None = None
    notes: str = ""

    def supports(self, modality: str) -> bool:
        return modality in self.modalities


FAMILIES: Registry[Family] = Registry("model family")


def register_family(family: Family) -> Family:
    """Register `family` under its `model_type` (a transformers `config.model_type`)."""
    if family.box_format is not None and family.box_format not in BOX_FORMATS:
        raise ValueError(f"family {family.model_type}: box_format {family.box_format!r} not in {BOX_FORMATS}")
    return FAMILIES.add(family.model_type, family)


GENERIC = Family(model_type="generic", modalities=("image",), notes="unknown family: layout inferred from shapes")


def get_family(model_type: str | None) -> Family:
    return FAMILIES.get(model_type or "", GENERIC)


def family_of(model) -> Family:
    """The family of a (possibly peft-wrapped) transformers model or of a config."""
    config = getattr(model, "config", model)
    return get_family(getattr(config, "model_type", None))


QWEN_VL_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>")

register_family(Family(
    model_type="qwen2_vl", modalities=("image", "video"), tower_keys=("visual",), placeholder_tokens=QWEN_VL_TOKENS,
    layout=QWEN_VL_LAYOUT, box_format="norm1000", mrope=True,
    notes="boxes as integers on a 0-1000 grid of the image (Qwen2-VL report, Sec. 2.2 grounding)",
))
register_family(Family(
    model_type="qwen2_5_vl", modalities=("image", "video"), tower_keys=("visual",), placeholder_tokens=QWEN_VL_TOKENS,
    layout=QWEN_VL_LAYOUT, box_format="model_pixel", mrope=True,
    notes="boxes in absolute pixels of the resized input image (Qwen2.5-VL report, Sec. 2.2.1)",
))
register_family(Family(
    model_type="qwen3_vl", modalities=("image",), tower_keys=("visual",), placeholder_tokens=QWEN_VL_TOKENS,
    layout=QWEN_VL_LAYOUT, box_format="norm1000", mrope=True,
    notes="boxes relative to the image on a 0-1000 grid (Qwen3-VL cookbooks, 2D grounding)",
))
register_family(Family(
    model_type="qwen2_audio", modalities=("audio",), tower_keys=("audio_tower", "multi_modal_projector"),
    placeholder_tokens=("<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"),
    layout={"input_features": "per_audio", "feature_attention_mask": "per_audio"}, audio_rate=16000,
))
register_family(Family(
    model_type="gemma3", tower_keys=("vision_tower", "multi_modal_projector"),
    placeholder_tokens=("<start_of_image>", "<image_soft_token>", "<end_of_image>"),
    layout={"pixel_values": "per_image"},
    notes="token_type_ids (per token) let image tokens attend both ways; no documented box convention",
))
register_family(Family(
    model_type="idefics3", tower_keys=("vision_model", "connector"),
    placeholder_tokens=("<image>", "<fake_token_around_image>", "<global-img>",
                        *(f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7))),
    layout={"pixel_values": "per_prompt", "pixel_attention_mask": "per_prompt"},
    notes="pixel_values [B, images, C, H, W] (per prompt); SmolVLM shares the architecture",
))
register_family(Family(
    model_type="mistral3", tower_keys=("vision_tower", "multi_modal_projector"),
    placeholder_tokens=("[IMG]", "[IMG_BREAK]", "[IMG_END]"),
    layout={"pixel_values": "per_image", "image_sizes": "per_image"},
))
register_family(Family(
    model_type="llava_onevision", tower_keys=("vision_tower", "multi_modal_projector", "image_newline"),
    placeholder_tokens=("<image>", "<video>"),
    layout={"pixel_values": "per_image", "image_sizes": "per_image", "batch_num_images": "per_prompt"},
))
register_family(Family(
    model_type="internvl", tower_keys=("vision_tower", "multi_modal_projector"),
    placeholder_tokens=("<IMG_CONTEXT>", "<img>", "</img>", "<video>"),
    layout={"pixel_values": "per_image"}, box_format="norm1000",
    notes="<ref>...</ref><box>[[x1, y1, x2, y2]]</box> on a 0-1000 grid (InternVL docs); one tile per image here",
))
