"""The PPO critic: the policy's architecture without its LM head, plus a scalar value head.

:class:`ValueModel` behaves like a causal LM whose "logits" have one channel, the value of the state before each
token: it takes the same inputs (images, M-RoPE positions, a KV cache) and returns an object with ``.logits``
``[B, L, 1]`` and ``.past_key_values``. So the training forward (`mmrft.train.forward`) scores a rollout batch with it
exactly as it scores the policy, prompt shared across the group included. Values at completion position t are read
from the state that predicts token t, the same alignment as the policy's log-probs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from mmrft.atomic import directory
from mmrft.config import Config
from mmrft.models.load import load_policy
from mmrft.models.positions import base_model

VALUE_HEAD_FILE = "value_head.safetensors"


@dataclass
class ValueOutput:
    logits: torch.Tensor  # [B, L, 1] values
    past_key_values: object = None


class ValueModel(nn.Module):
    """`backbone` is an image-text-to-text model (optionally a peft LoRA wrapper); its inner decoder (``.model``)
    gives the final hidden states, and ``value_head`` maps each to a scalar."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        hidden = base_model(backbone).config.get_text_config().hidden_size
        self.value_head = nn.Linear(hidden, 1)
        # Small random weights and a zero bias: initial values near 0, the scale of verifiable rewards
        # (OpenRLHF initialises its value head with std 1/(hidden+1) for the same reason).
        nn.init.normal_(self.value_head.weight, std=1.0 / math.sqrt(hidden + 1))
        nn.init.zeros_(self.value_head.bias)

    def get_base_model(self) -> nn.Module:
        """The transformers model (what `mmrft.models.positions` asks for the rope index and checkpointing flag)."""
        return base_model(self.backbone)

    def forward(self, *, logits_to_keep: int = 0, **inputs) -> ValueOutput:
        inputs.pop("return_dict", None)
        out = self.get_base_model().model(**inputs, return_dict=True)
        hidden = out.last_hidden_state
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:, :]
        values = self.value_head(hidden.to(self.value_head.weight.dtype))
        return ValueOutput(values, getattr(out, "past_key_values", None))

    def save(self, path: str | Path, processor=None) -> Path:
        """Backbone (LoRA merged) with `save_pretrained` and the processor beside it, so the directory is a complete
        checkpoint that `critic.model_path` (or `model.path`) accepts; value head as safetensors; atomically."""
        with directory(Path(path)) as tmp:
            backbone = self.backbone
            if hasattr(backbone, "merge_and_unload"):
                import copy

                backbone = copy.deepcopy(backbone).merge_and_unload()
            backbone.save_pretrained(tmp)
            if processor is not None:
                processor.save_pretrained(tmp)
            save_file({k: v.detach().cpu().contiguous() for k, v in self.value_head.state_dict().items()},
                      str(tmp / VALUE_HEAD_FILE))
        return Path(path)


def load_critic(cfg: Config, device: torch.device | str = "cpu") -> ValueModel:
    """The critic for `cfg`: backbone from `critic.model_path` (default: the policy's `model.path`) with the
    policy's dtype / LoRA / vision-freezing settings; the value head from `value_head.safetensors` when that
    directory has one (a saved critic), else freshly initialised."""
    model_cfg = cfg.model
    if cfg.critic.model_path:
        import dataclasses

        model_cfg = dataclasses.replace(cfg.model, path=cfg.critic.model_path)
    backbone, _ = load_policy(model_cfg, device)
    critic = ValueModel(backbone).to(device)
    head = Path(model_cfg.path) / VALUE_HEAD_FILE
    if head.exists():
        critic.value_head.load_state_dict(load_file(str(head)))
    return critic.to(device)
