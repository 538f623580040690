"""FSDP2 (`torch.distributed.fsdp.fully_shard`): parameters, gradients and optimizer states split over the ranks.

With `trainer.fsdp=true` under torchrun, every transformer block the model names in `_no_split_modules` (decoder
layers, vision/audio tower blocks) becomes one FSDP unit and the whole model the root unit. At rest each rank holds
1/N of every parameter, of its gradient and of AdamW's two moments; a block's full weights are gathered just before
it runs and freed after. Data parallelism stays as in `mmrft.train.dist` (whole groups per rank, global loss
denominators, summed gradients).

Two places differ from a plain FSDP training loop:
- Sampling. Ranks sample different numbers of tokens (each stops at its own end-of-turn tokens), so gathering block
  by block inside `generate` would pair up different collectives and hang. Rollouts and evaluation run inside
  `gathered(model)`: the whole model is all-gathered once (the same collective on every rank), generation makes no
  collective at all, and the weights are freed after. That phase holds the full weights, as verl does for its
  FSDP + Hugging Face rollouts; gradients and optimizer states stay sharded throughout.
- Gradient reduction. FSDP averages gradients over ranks; mmrft's loss already uses the whole batch's denominators
  and needs the sum, so `mmrft.train.dist.sum_gradients` multiplies the reduced shards by the world size (gloo has
  no pre-multiplied sum for `set_gradient_divide_factor(1)`).

Checkpoints hold full, unsharded tensors (gathered collectively, written by rank 0), so they load into any number of
processes and into `from_pretrained`. With LoRA the frozen base weights are sharded beside the adapters (FSDP2 shards
each parameter on its own, so frozen and trained ones share a unit), the reference for a KL is the same sharded model
with the adapter switched off, and checkpoints hold the gathered adapter.

Every forward and backward pass gathers and reduces with the other ranks, so all ranks make the same passes through
the same modules: ranks holding fewer micro-batches (DAPO keeps different numbers of groups per rank) run stand-in
passes worth nothing (`mmrft.train.update.aligned_over_ranks`), the shared-prompt forward always makes its two passes,
and the training data may not mix samples that run different towers (`check_fsdp_data`). PPO's critic is sharded
like the policy (its own units, the summed update, full tensors in checkpoints; the final `critic/` directory is
written from an unsharded copy on rank 0). With the vLLM engine, each weight sync runs inside `gathered(policy)`
(every rank syncs after every update) and sampling needs no gather; vLLM's sleep level 2 is refused, because it
reloads the weights inside `generate`, which DAPO's refill rounds do not call on every rank.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any

import torch

from mmrft.errors import ConfigError
from mmrft.models.positions import base_model


def check_fsdp(cfg) -> None:
    """Refuse the combinations FSDP does not cover yet, before any work."""
    why = []
    if cfg.rollout.engine == "vllm" and cfg.rollout.vllm_sleep_level == 2:
        why.append("rollout.vllm_sleep_level=2 with rollout.engine=vllm (it reloads the weights at every generate, "
                   "a gather ranks would not all make; use level 1)")
    if why:
        raise ConfigError("trainer.fsdp=true does not support " + "; ".join(why))


def media_signature(sample) -> tuple[bool, bool]:
    """Which towers a sample's forward pass runs: (vision: images or video, audio)."""
    return bool(sample.images or sample.videos), bool(sample.audios)


def check_fsdp_data(samples, where: str) -> None:
    """Under FSDP a tower's weights are gathered and its gradients reduced only on ranks whose batch runs it, so
    every training sample must run the same towers (all with images or video, or all text, ...); refuse a mix."""
    kinds: dict[tuple[bool, bool], str] = {}
    for s in samples:
        kinds.setdefault(media_signature(s), s.id)
    if len(kinds) > 1:
        names = {(False, False): "text only", (True, False): "images/video", (False, True): "audio",
                 (True, True): "images/video and audio"}
        mix = ", ".join(f"{names[k]} (e.g. id {sid!r})" for k, sid in kinds.items())
        raise ConfigError(f"{where}: trainer.fsdp=true needs every training sample to carry the same kinds of media, "
                          f"and this data mixes {mix}; train without trainer.fsdp, or split the data")


def shard_model(model: torch.nn.Module) -> torch.nn.Module:
    """Apply `fully_shard` to every block named in the model's `_no_split_modules`, then to the model; in place."""
    from torch.distributed.fsdp import fully_shard

    names = set(getattr(base_model(model), "_no_split_modules", None) or [])
    blocks = [m for m in model.modules() if type(m).__name__ in names]
    if not blocks:
        raise ConfigError(f"trainer.fsdp: {type(model).__name__} names no transformer blocks (_no_split_modules) "
                          "to shard")
    for block in blocks:
        fully_shard(block)
    fully_shard(model)
    # FSDP2 warns at every forward that a model's output is a view (in-place ops on it would skip its backward
    # hook); transformers slices the logits it returns, and mmrft changes them only out of place.
    warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module .* returned a view tensor")
    # FSDP2 makes the first unit to run forward the root. `generate` of the vision-language models runs the vision
    # tower through a method of the model (not its forward) before the model's forward, which would make a vision
    # block its own root and fail; so the model is made the root now (torch has no public call for this).
    model._get_fsdp_state()._lazy_init()
    return model


def fsdp_units(model: torch.nn.Module) -> list:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in model.modules() if isinstance(m, FSDPModule)]


def is_sharded(model: Any) -> bool:
    return model is not None and bool(fsdp_units(model))


@contextlib.contextmanager
def gathered(model: torch.nn.Module):
    """Full weights on every rank for the duration (collective on entry): forwards inside make no collectives, so
    ranks may run different numbers of them (sampling, evaluation on rank 0 alone). No-op for a model not sharded."""
    units = fsdp_units(model) if model is not None else []
    if not units:
        yield model
        return
    for unit in units:
        unit.unshard()
        unit.set_reshard_after_forward(False, recurse=False)
    try:
        yield model
    finally:
        for unit in units:
            unit.reshard()
            unit.set_reshard_after_forward(True, recurse=False)


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Unsharded CPU tensors of the whole model on rank 0 (empty elsewhere). Collective: every rank calls it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


class FullWeights:
    """What `save_pretrained` writes for a sharded model: its gathered state dict (rank 0 writes it)."""

    def __init__(self, model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
        self.model, self.state = model, state_dict

    def save_pretrained(self, out: str | Path, **kwargs) -> None:
        self.model.save_pretrained(str(out), state_dict=self.state, **kwargs)


def full_weights(model: torch.nn.Module, fsdp: bool):
    """The policy as `save_model` takes it: the model itself, or under FSDP (collective: every rank calls this) its
    full weights gathered to rank 0."""
    return FullWeights(model, full_state_dict(model)) if fsdp else model


class FullStateOptimizer:
    """An optimizer over sharded parameters seen through full state dicts keyed by parameter name, so a checkpoint
    does not depend on the number of ranks. Both methods are collective."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.model, self.optimizer = model, optimizer

    def state_dict(self) -> dict:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(self.model, self.optimizer,
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def load_state_dict(self, state: dict) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(self.model, self.optimizer, state, options=StateDictOptions(full_state_dict=True))


class Snapshot:
    """A state dict taken already (collectively, on every rank), handed to code that calls `state_dict()` on rank 0."""

    def __init__(self, state: dict) -> None:
        self.state = state

    def state_dict(self) -> dict:
        return self.state


def _under(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


class FullCritic:
    """A sharded critic seen through its gathered state dict, the way `save_checkpoint` reads a critic: `backbone`
    (saved with `save_pretrained`) and `value_head.state_dict()`."""

    def __init__(self, critic: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
        self.backbone = FullWeights(critic.backbone, _under(state, "backbone."))
        self.value_head = Snapshot(_under(state, "value_head."))


def unsharded_critic(cfg, critic: torch.nn.Module):
    """The critic to save at the end of a run: itself when not sharded; under FSDP (collective) a fresh unsharded
    copy on rank 0 holding the gathered weights (so `ValueModel.save` can merge LoRA into it), None elsewhere."""
    if not is_sharded(critic):
        return critic
    state = full_state_dict(critic)
    if not state:
        return None
    from mmrft.models.value import load_critic

    copy = load_critic(cfg, "cpu")
    copy.load_state_dict(state)
    return copy
