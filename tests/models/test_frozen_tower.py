"""A frozen vision tower takes no part in backward: the input-gradient hooks transformers and peft put on every
sub-model's embeddings are removed from the tower, and the adapter's gradients do not change."""

import torch

from mmrft.config import ModelConfig
from mmrft.data.collate import encode_prompts
from mmrft.data.sources import load_samples
from mmrft.models.load import load_policy
from mmrft.models.positions import base_model


def _lora_grads(model, inputs) -> tuple[dict[str, torch.Tensor], bool]:
    """Gradients of the LoRA tensors for a toy loss, and whether the tower's output required grad."""
    seen = []
    handle = base_model(model).model.visual.register_forward_hook(lambda m, i, o: seen.append(
        (o[0] if isinstance(o, tuple) else getattr(o, "last_hidden_state", o)).requires_grad))
    model.zero_grad()
    model(**inputs).logits.float().logsumexp(-1).mean().backward()
    handle.remove()
    return {n: p.grad.clone() for n, p in model.named_parameters() if "lora_" in n and p.grad is not None}, seen[0]


def test_frozen_tower_is_left_out_of_backward(tiny_model_dir, count_data):
    cfg = ModelConfig(path=str(tiny_model_dir), freeze_vision=True, gradient_checkpointing=True)
    cfg.lora.enabled, cfg.lora.r = True, 4
    torch.manual_seed(0)
    model, proc = load_policy(cfg)
    model.train()
    inputs = encode_prompts(proc, load_samples(count_data["train"])[:2]).inputs
    tower_hooks = [h for name, mod in model.named_modules() if "visual" in name for h in mod._forward_hooks.values()]
    assert tower_hooks == []
    grads, tower_needs_grad = _lora_grads(model, inputs)
    assert not tower_needs_grad
    assert grads and any(float(g.abs().sum()) > 0 for g in grads.values())

    base_model(model).enable_input_require_grads()  # the hooks back, as transformers and peft leave them
    again, tower_needs_grad = _lora_grads(model, inputs)
    assert tower_needs_grad  # the removal is what made the difference
    assert grads.keys() == again.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], again[name], rtol=1e-5, atol=1e-7)
