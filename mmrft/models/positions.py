"""Token positions of left-padded prompts and of what follows them, per model family.

Reusing a prompt's KV cache for several continuations (shared prefill in generation, shared prompt in the
training forward) needs the positions the model itself would give those tokens. Qwen2-VL / Qwen2.5-VL use M-RoPE:
three position rows (time, height, width), computed by the model's own `get_rope_index`; text after the image
continues at `text position + rope delta`. Other decoders use 1-D positions counting attended tokens.
"""

from __future__ import annotations

import contextlib
import logging
import warnings

import torch


class _NoCacheRenameNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "are deprecated. Use `cache` instead" not in record.getMessage()


@contextlib.contextmanager
def reusing_cache():
    """Silence transformers' `past_key_values is deprecated, use cache` notice for our calls (a FutureWarning in
    5.23, a log line from 5.25): its advice is wrong in 5.23 (`forward(cache=...)` is silently ignored,
    `generate(cache=...)` is rejected; see pyproject), and the old name works throughout the supported range."""
    log = logging.getLogger("transformers.utils.generic")
    quiet = _NoCacheRenameNotice()
    log.addFilter(quiet)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*`past_key_values` is deprecated", category=FutureWarning)
            yield
    finally:
        log.removeFilter(quiet)


def base_model(model):
    """The transformers model under a peft wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def uses_mrope(model, inputs: dict[str, torch.Tensor]) -> bool:
    inner = getattr(base_model(model), "model", None)
    return hasattr(inner, "get_rope_index") and "mm_token_type_ids" in inputs


def prompt_positions(model, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(positions, rope_deltas) of the prompt tokens: M-RoPE [3, B, P] and deltas [B, 1] for the Qwen-VL families,
    else 1-D [B, P] and None."""
    if uses_mrope(model, inputs):
        inner = base_model(model).model
        media = {k: inputs[k] for k in ("image_grid_thw", "video_grid_thw") if k in inputs}
        return inner.get_rope_index(inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                    mm_token_type_ids=inputs["mm_token_type_ids"], **media)
    mask = inputs["attention_mask"].long()
    return (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0), None


def continue_positions(prompt_pos: torch.Tensor, t: int) -> torch.Tensor:
    """Positions of t tokens generated after the prompt: last prompt position + 1, +2, ... (as `generate` does)."""
    step = torch.arange(1, t + 1, device=prompt_pos.device)
    return prompt_pos[..., -1:] + step


def supports_cache_reuse(model) -> bool:
    """Activation checkpointing turns the KV cache off in training, so prompts cannot be shared then."""
    base = base_model(model)
    flag = "is_activation_checkpointing" if hasattr(type(base), "is_activation_checkpointing") else "is_gradient_checkpointing"
    return not getattr(base, flag, False)
