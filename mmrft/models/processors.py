"""Processors for machines without torchvision (the "image-only" names are kept for saved checkpoints).

transformers' `Qwen2VLProcessor` (and its Qwen2.5-VL twin) always builds a video processor, and every stock video
processor needs torchvision, which the CPU-only install of mmrft does not have. The image processors themselves have
a PIL backend that `AutoImageProcessor` picks when torchvision is missing. So for the tiny local models we save a
processor whose `processor_class` is one of the subclasses below: they take only `image_processor` and `tokenizer`,
and handle videos (already decoded frames, see `mmrft.data.video`) with `video_frames.FramesVideoProcessor`, which
derives the video patches from the image processor.

They are registered with `AutoProcessor` when `mmrft` is imported, under their own class names, so a real checkpoint
whose files say `"processor_class": "Qwen2VLProcessor"` still gets the stock processor (with its video processor,
where torchvision is present). Registration needs a config class as key; a private placeholder config is used so no
real model type is remapped.
"""

from __future__ import annotations

from transformers import AutoProcessor, PretrainedConfig
from transformers.models.qwen2_5_vl.processing_qwen2_5_vl import Qwen2_5_VLProcessor
from transformers.models.qwen2_vl.processing_qwen2_vl import Qwen2VLProcessor
from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor
from transformers.processing_utils import ProcessorMixin

from mmrft.models.video_frames import FramesVideoProcessor


def _image_only_init(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
    # Same token bookkeeping as the stock processors' __init__, minus the video processor argument.
    self.image_token = getattr(tokenizer, "image_token", "<|image_pad|>")
    self.video_token = getattr(tokenizer, "video_token", "<|video_pad|>")
    self.image_token_id = getattr(tokenizer, "image_token_id", None) or tokenizer.convert_tokens_to_ids(
        self.image_token
    )
    self.video_token_id = getattr(tokenizer, "video_token_id", None) or tokenizer.convert_tokens_to_ids(
        self.video_token
    )
    ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)
    # not a saved attribute: rebuilt from the image processor on every load
    self.video_processor = FramesVideoProcessor(image_processor)


class Qwen2VLImageOnlyProcessor(Qwen2VLProcessor):
    """`Qwen2VLProcessor` with frame-based videos instead of the torchvision video processor."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        _image_only_init(self, image_processor, tokenizer, chat_template, **kwargs)


class Qwen2_5_VLImageOnlyProcessor(Qwen2_5_VLProcessor):
    """`Qwen2_5_VLProcessor` with frame-based videos instead of the torchvision video processor."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        _image_only_init(self, image_processor, tokenizer, chat_template, **kwargs)


class Qwen3VLImageOnlyProcessor(Qwen3VLProcessor):
    """`Qwen3VLProcessor` without the torchvision video processor (images and text)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        _image_only_init(self, image_processor, tokenizer, chat_template, **kwargs)
        del self.video_processor  # Qwen3-VL's video prompt (per-frame timestamps) is not built from frames here
        self.vision_start_token = getattr(tokenizer, "vision_start_token", "<|vision_start|>")
        self.vision_end_token = getattr(tokenizer, "vision_end_token", "<|vision_end|>")
        self.vision_start_token_id = tokenizer.convert_tokens_to_ids(self.vision_start_token)
        self.vision_end_token_id = tokenizer.convert_tokens_to_ids(self.vision_end_token)


IMAGE_ONLY_PROCESSORS = {
    "qwen2_vl": Qwen2VLImageOnlyProcessor,
    "qwen2_5_vl": Qwen2_5_VLImageOnlyProcessor,
    "qwen3_vl": Qwen3VLImageOnlyProcessor,
}


def register_processor(cls: type) -> None:
    """Make `AutoProcessor.from_pretrained` resolve a checkpoint whose `processor_class` is `cls.__name__`
    (idempotent). The registry is keyed by a config class; a private placeholder config is made for `cls`, so no
    real model type is remapped."""
    key = type(f"_{cls.__name__}Key", (PretrainedConfig,), {"model_type": f"mmrft_{cls.__name__.lower()}"})
    AutoProcessor.register(key, cls, exist_ok=True)


def register_image_only_processors() -> None:
    """Make `AutoProcessor.from_pretrained` resolve the image-only processor class names (idempotent)."""
    for cls in IMAGE_ONLY_PROCESSORS.values():
        register_processor(cls)
