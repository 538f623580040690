"""Load a policy and its processor from a local checkpoint directory, the same way for a tiny model or Qwen2.5-VL-7B."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import torch
from transformers import AutoModelForMultimodalLM, AutoProcessor

from mmrft.config import ModelConfig
from mmrft.errors import ConfigError
from mmrft.models.families import family_of

log = logging.getLogger("mmrft.models")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# The Auto class for every family: transformers' multimodal-LM mapping holds every image-text-to-text model and the
# audio-text ones (Qwen2-Audio, Voxtral, ...), with the same classes for the former.
AUTO_MODEL = AutoModelForMultimodalLM


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


def _chat_template(path: Path, tokenizer) -> str | None:
    if (path / "chat_template.jinja").is_file():
        return (path / "chat_template.jinja").read_text()
    if (path / "chat_template.json").is_file():
        return json.loads((path / "chat_template.json").read_text()).get("chat_template")
    return tokenizer.chat_template


def _processor_without_torchvision(path: Path, error: Exception):
    """Qwen-VL checkpoints' stock processors need torchvision for their video processor; without it, build the
    same processor from the checkpoint's image processor (PIL backend) and tokenizer, with mmrft's frame-based
    video input. Other failures are re-raised."""
    from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer
    from transformers.utils import is_torchvision_available

    from mmrft.models.processors import IMAGE_ONLY_PROCESSORS

    model_type = getattr(AutoConfig.from_pretrained(str(path)), "model_type", None)
    if is_torchvision_available() or model_type not in IMAGE_ONLY_PROCESSORS:
        raise error
    log.warning("%s: the stock %s processor needs torchvision, which is not installed; using mmrft's "
                "torchvision-free processor (PIL images, PyAV-decoded video frames)", path, model_type)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    return IMAGE_ONLY_PROCESSORS[model_type](image_processor=AutoImageProcessor.from_pretrained(str(path)),
                                             tokenizer=tokenizer, chat_template=_chat_template(path, tokenizer))


def load_processor(path: str):
    """`AutoProcessor` with left padding (generation appends completions at the right)."""
    # Checkpoints are read from disk only; a missing file must fail here, not trigger a download.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        processor = AutoProcessor.from_pretrained(str(check_model_dir(path)))
    except (OSError, ImportError, ValueError) as e:
        processor = _processor_without_torchvision(Path(path), e)
    processor.tokenizer.padding_side = "left"
    if processor.tokenizer.pad_token is None:
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    return processor


def freeze_vision(model: torch.nn.Module) -> int:
    """Turn off gradients for the media encoders (vision/audio tower) and projector named by the model's family;
    returns how many tensors were frozen."""
    keys = family_of(model).tower_keys
    n = 0
    for name, param in model.named_parameters():
        if any(key in name for key in keys):
            param.requires_grad_(False)
            n += 1
    return n


def lora_targets(model, names: list[str], language_only: bool) -> list[str] | str:
    """peft `target_modules`: the names as given, or (language_only) a regex that peft full-matches against module
    paths, keeping modules whose last name is one of `names` and whose path has none of the family's tower keys."""
    if not language_only:
        return list(names)
    towers = "|".join(re.escape(k) for k in family_of(model).tower_keys)
    leaves = "|".join(re.escape(n) for n in names)
    return rf"^(?!.*(?:{towers})).*\.(?:{leaves})$"


def load_policy(cfg: ModelConfig, device: torch.device | str = "cpu"):
    """Returns (model, processor). LoRA (peft) wraps the model when `cfg.lora.enabled`."""
    path = check_model_dir(cfg.path)
    if cfg.dtype not in DTYPES:
        raise ConfigError(f"model.dtype: {cfg.dtype!r} is not one of {', '.join(DTYPES)}")
    processor = load_processor(str(path))
    model = AUTO_MODEL.from_pretrained(str(path), dtype=DTYPES[cfg.dtype])
    model.to(device)
    native_gqa_on_cpu(device)
    if cfg.freeze_vision:
        freeze_vision(model)
    if cfg.gradient_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.25; the old name warns there
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if cfg.lora.enabled:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=cfg.lora.r,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=lora_targets(model, cfg.lora.target_modules, cfg.lora.language_only),
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    drop_tower_input_grads(model)
    return model, processor


def native_gqa_on_cpu(device: torch.device | str) -> bool:
    """On CPU, let torch's SDPA attend each query head to its group's key/value head itself (`enable_gqa`), rather
    than transformers copying every key/value head once per query head of its group (`repeat_kv`), which it does
    whenever an attention mask is given: in every padded batch, for every prefill, tool-turn feed and training
    forward. Same results (tested); measured with `benchmarks/multiturn_step.py` (2 CPU cores, tiny Qwen2-VL with 2
    key/value heads for 4 query heads): about a tenth off both the rollout and the update. transformers reads
    `TRANSFORMERS_SDPA_FORCE_GQA` at every call; a value the user set is kept. Not on CUDA, where a masked
    `enable_gqa` falls back to SDPA's math kernel (so nothing is set on a machine with a GPU). Returns whether GQA is
    forced now."""
    if torch.device(device).type == "cpu" and not torch.cuda.is_available() and tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 5):
        os.environ.setdefault("TRANSFORMERS_SDPA_FORCE_GQA", "1")
    return os.environ.get("TRANSFORMERS_SDPA_FORCE_GQA") == "1"


def drop_tower_input_grads(model: torch.nn.Module) -> int:
    """Remove the hooks that make a frozen tower's activations require gradients; returns how many.

    `enable_input_require_grads` (transformers calls it for gradient checkpointing, peft for adapters) hooks the
    input embeddings of every sub-model, the vision tower's patch embedding included. A frozen tower's output then
    requires grad: each of its checkpointed blocks keeps its input, and the tower is recomputed and back-propagated
    every step for no parameter (measured on the small Qwen2-VL with LoRA: 72 MiB of saved inputs). The language
    model's own hook stays; non-reentrant checkpointing, which mmrft uses, needs neither for parameter gradients.
    A tower with anything to train (not frozen, or LoRA on its modules) keeps its hooks."""
    keys = family_of(model).tower_keys
    if any(p.requires_grad for name, p in model.named_parameters() if any(key in name for key in keys)):
        return 0
    n = 0
    for name, module in model.named_modules():
        if not any(key in name for key in keys):
            continue
        for hook_id, hook in list(module._forward_hooks.items()):
            if getattr(hook, "__name__", "").startswith("make_inputs_require_grad"):  # transformers' and peft's
                del module._forward_hooks[hook_id]
                n += 1
    return n


def media_token_ids(processor, model=None) -> list[int]:
    """Ids of media placeholder tokens: a sampled one breaks the next forward ("image features and tokens do not
    match"), so generation suppresses them. The family's declared tokens plus whatever the processor names."""
    tok = processor.tokenizer
    names = ["<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>"]
    if model is not None:
        names += list(family_of(model).placeholder_tokens)
    for attr in ("image_token", "video_token", "audio_token", "boi_token", "eoi_token", "audio_bos_token",
                 "audio_eos_token", "fake_image_token", "global_image_token", "image_break_token", "image_end_token"):
        value = getattr(processor, attr, None) or getattr(tok, attr, None)
        if isinstance(value, str):
            names.append(value)
    ids = set()
    for name in names:
        if not name:
            continue
        i = tok.convert_tokens_to_ids(name)
        if i is not None and i != tok.unk_token_id:
            ids.add(int(i))
    return sorted(ids)
