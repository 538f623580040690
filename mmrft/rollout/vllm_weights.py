"""The policy's weights under the names vLLM loads: pure functions, tested on CPU without vLLM.

vLLM's `model.load_weights([(name, tensor)])` takes Hugging Face checkpoint names and maps them itself (Qwen2-VL's
`hf_to_vllm_mapper`), so what it needs is the policy's own parameter names with peft's wrappers taken off (as TRL
does: strip `base_model.model.` and `.base_layer`, drop `lora_*`) and each LoRA update added to its base weight.
"""

from __future__ import annotations

import torch

from mmrft.errors import MmrftError


def vllm_weight_name(name: str) -> str | None:
    """A (possibly peft-wrapped) parameter name as the checkpoint names it, None for adapter-only parameters."""
    name = name.removeprefix("base_model.model.").replace(".base_layer.", ".")
    parts = name.split(".")
    if any(p.startswith("lora_") for p in parts) or "original_module" in parts:
        return None
    if "modules_to_save" in parts:  # peft's trained copy of a whole module: `x.modules_to_save.<adapter>.weight`
        k = parts.index("modules_to_save")
        parts = parts[:k] + parts[k + 2 :]
    return ".".join(parts)


def _lora_delta(module) -> torch.Tensor | None:
    """The un-merged LoRA update of a peft layer's base weight (None when there is nothing to add)."""
    if getattr(module, "disable_adapters", False):
        return None
    delta = None
    for adapter in module.active_adapters:
        has = adapter in module.lora_A or adapter in getattr(module, "lora_embedding_A", {})
        if not has or adapter in getattr(module, "merged_adapters", ()):
            continue
        if getattr(module, "use_dora", {}).get(adapter, False):
            raise MmrftError("rollout.engine=vllm: DoRA adapters cannot be merged for vLLM; use plain LoRA")
        d = module.get_delta_weight(adapter)
        delta = d if delta is None else delta + d
    return delta


@torch.no_grad()
def vllm_weights(model):
    """(checkpoint name, tensor) of every weight vLLM holds, from the policy as it is now: peft LoRA deltas added to
    their base weights (new tensors, one layer at a time; the policy is not modified), adapter tensors left out."""
    lora = {name: m for name, m in model.named_modules() if hasattr(m, "lora_A") and hasattr(m, "get_delta_weight")}
    for name, p in model.named_parameters():
        new = vllm_weight_name(name)
        if new is None:
            continue
        owner = name.rsplit(".", 1)[0].removesuffix(".base_layer")
        delta = _lora_delta(lora[owner]) if owner in lora and name.endswith(".base_layer.weight") else None
        yield new, p.detach() if delta is None else p.detach() + delta.to(p.dtype)
