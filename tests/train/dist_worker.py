"""One rank of the data-parallel equality test (tests/train/test_dist.py): a policy update on this rank's share."""

from __future__ import annotations

import torch
import torch.distributed as dist
from safetensors.torch import save_file

from mmrft.algorithms import ADVANTAGE_ESTIMATORS
from mmrft.config import AlgorithmConfig, LoraConfig, ModelConfig
from mmrft.data.collate import encode_prompts
from mmrft.data.sources import load_samples
from mmrft.models.load import load_policy
from mmrft.rollout.engine import group_rows
from mmrft.train.dist import SINGLE, DistContext, global_advantages, shard
from mmrft.train.forward import build_sequences
from mmrft.train.fsdp import full_state_dict, shard_model
from mmrft.train.update import policy_update


def update_once(ctx: DistContext, model_dir: str, data: str, batch: dict, estimator: str, agg: str, lora: bool,
                out: str) -> None:
    torch.manual_seed(0)  # the same LoRA initialisation on every rank, as `mmrft train` seeds every rank alike
    model, proc = load_policy(ModelConfig(path=model_dir, lora=LoraConfig(enabled=lora, r=4, alpha=8)))
    model.train()
    if not ctx.enabled:  # the starting weights, to check that the update moved them
        save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
                  out.replace(".safetensors", ".start.safetensors"))
    if ctx.fsdp:
        shard_model(model)
    n, groups = batch["n"], shard(list(range(batch["groups"])), ctx)
    rows = group_rows(groups, n)
    samples = load_samples(data)[: batch["groups"]]
    prompts = encode_prompts(proc, [samples[g] for g in groups])
    seqs = build_sequences(prompts, batch["ids"][rows], batch["mask"][rows], n, batch["suppress"])
    local_ids = torch.arange(len(groups)).repeat_interleave(n)
    adv = global_advantages(ADVANTAGE_ESTIMATORS[estimator], batch["rewards"][rows], local_ids, batch["mask"][rows],
                            ctx)
    # SGD: the weights move by exactly lr x the (summed) gradient. Adam's first step is lr x sign(g), which turns
    # float-rounding noise in near-zero gradients into full steps and would hide what the test is about.
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    algo = AlgorithmConfig(loss_agg_mode=agg, micro_batch_size=n)  # one group per micro-batch: accumulation too
    policy_update(model, opt, sched, seqs, batch["mask"][rows], adv, algo, temperature=1.0,
                  max_len=batch["ids"].shape[1], max_grad_norm=1.0, ctx=ctx)
    state = full_state_dict(model) if ctx.fsdp else model.state_dict()  # FSDP: gathered to rank 0 (collective)
    if ctx.is_main:
        save_file({k: v.detach().clone().contiguous() for k, v in state.items()}, out)


def vllm_sync_once(ctx: DistContext, model_dir: str, lora: bool, out: str) -> None:
    """What the vLLM engine is handed at a weight sync (through a recorder standing in for vllm.LLM), with the
    policy sharded by FSDP2 when `ctx.fsdp`."""
    from types import SimpleNamespace

    from mmrft.rollout.vllm import VLLMRolloutEngine
    from mmrft.train.fsdp import gathered

    torch.manual_seed(0)
    model, proc = load_policy(ModelConfig(path=model_dir, lora=LoraConfig(enabled=lora, r=4, alpha=8)))
    with torch.no_grad():  # non-zero adapters, so that the merge shows
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape) * 0.05)
    if ctx.fsdp:
        shard_model(model)
    got: dict[str, torch.Tensor] = {}

    def load_weights(weights):
        for name, t in weights:
            assert type(t) is torch.Tensor, (name, type(t))  # whole tensors, not shards
            got[name] = t.detach().clone().contiguous()

    class Recorder:
        def apply_model(self, fn):
            return [fn(SimpleNamespace(load_weights=load_weights))]

        def sleep(self, level): ...
        def wake_up(self, tags): ...
        def reset_prefix_cache(self): ...
        def reset_encoder_cache(self): ...

    VLLMRolloutEngine(model, proc, model_path="unused", sleep_level=0, llm=Recorder(), vllm_module=SimpleNamespace(),
                      gather=gathered)
    if ctx.is_main:
        save_file(got, out)


def rank_main(rank: int, world: int, init_file: str, fsdp: bool, *args, job=update_once) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        job(DistContext(rank, world, rank, fsdp), *args)
    finally:
        dist.destroy_process_group()


def rank_vllm_sync(rank: int, world: int, init_file: str, fsdp: bool, *args) -> None:
    rank_main(rank, world, init_file, fsdp, *args, job=vllm_sync_once)


def single(*args) -> None:
    update_once(SINGLE, *args)
