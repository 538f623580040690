"""What an RL run's checkpoint holds: the parts `mmrft.train.state` saves and restores, unsharded or under FSDP."""

from __future__ import annotations

import torch

from mmrft.train.dist import DistContext, all_gather_list
from mmrft.train.fsdp import FullCritic, FullStateOptimizer, Snapshot, full_state_dict, full_weights
from mmrft.train.state import rng_state


def checkpoint_parts(learner, generator: torch.Generator, ctx: DistContext) -> dict:
    """What a checkpoint restores. Under FSDP the policy's weights are loaded before sharding (policy None here)
    and the optimizer goes through full, name-keyed state dicts."""
    if not ctx.fsdp:
        return {"policy": learner.model, "critic": learner.critic, "optimizers": learner.optimizers(),
                "generator": generator}
    optimizers = {"optimizer": FullStateOptimizer(learner.model, learner.optimizer), "scheduler": learner.scheduler}
    if learner.critic is not None:
        optimizers.update(critic_optimizer=FullStateOptimizer(learner.critic, learner.critic_optimizer),
                          critic_scheduler=learner.critic_scheduler)
    return {"policy": None, "critic": None, "generator": generator, "optimizers": optimizers}


def saveable_parts(learner, generator: torch.Generator, ctx: DistContext) -> dict:
    """What a checkpoint writes; under FSDP every rank calls this (the full tensors are gathered to rank 0)."""
    parts = checkpoint_parts(learner, generator, ctx)
    if ctx.enabled:  # every rank's random state, so a resumed run samples what the uninterrupted one would
        parts["rank_rng"] = all_gather_list(rng_state(generator), ctx)[1:]
    if ctx.fsdp:
        parts["policy"] = full_weights(learner.model, fsdp=True)
        if learner.critic is not None:
            parts["critic"] = FullCritic(learner.critic, full_state_dict(learner.critic))
        parts["optimizers"] = {k: Snapshot(v.state_dict()) for k, v in parts["optimizers"].items()}
    return parts
