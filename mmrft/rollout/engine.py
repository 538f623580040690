"""The rollout interface: prompts (+ media) in, G sampled completions per prompt out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from mmrft.data.collate import PromptBatch, concat_prompt_batches
from mmrft.errors import ConfigError
from mmrft.registry import Registry


@dataclass
class SamplingParams:
    n: int = 1
    max_new_tokens: int = 32
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


def group_rows(groups: list[int], n: int) -> list[int]:
    """The rows of `groups` in a prompt-major batch of `n` completions per prompt (row i belongs to prompt i // n),
    group by group: `[g * n + j for g in groups for j in range(n)]`."""
    return [g * n + j for g in groups for j in range(n)]


@dataclass
class Rollout:
    """Completions of B prompts, n each, in prompt-major order (row i belongs to prompt i // n).

    completion_ids  LongTensor[B*n, T]   right padded with the pad id after the last token
    completion_mask FloatTensor[B*n, T]  1 on every token of the response: generated tokens up to and including the
                                         end-of-turn token and, in multi-turn trajectories, the tool turns between
    truncated       BoolTensor[B*n]      True when the response hit a token limit without ending
    texts           the final answer of each row (the last assistant turn), what rewards grade

    Multi-turn trajectories (`mmrft.rollout.multiturn`) also carry:
    loss_mask       FloatTensor[B*n, T]  1 on the tokens the policy generated (tool / environment tokens 0); None:
                                         the completion mask (single turn)
    media           per row, the processor's media tensors of the images that arrived in tool turns ({} for none)
    token_keys      per-token processor keys of the responses ([B*n, T], e.g. mm_token_type_ids; 0 on generated
                                         tokens)
    trajectories    per row, the record of its turns and calls (`mmrft.rollout.multiturn.Trajectory`)
    logprobs        FloatTensor[B*n, T]  the sampler's log-probs of the generated tokens (0 elsewhere), when kept
    """

    prompts: PromptBatch
    n: int
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    truncated: torch.Tensor
    texts: list[str]
    loss_mask: torch.Tensor | None = None
    media: list[dict[str, torch.Tensor]] | None = None
    token_keys: dict[str, torch.Tensor] | None = None
    trajectories: list | None = None
    logprobs: torch.Tensor | None = None

    @property
    def group_ids(self) -> torch.Tensor:
        return torch.arange(len(self.prompts.samples)).repeat_interleave(self.n)

    @property
    def lengths(self) -> torch.Tensor:
        return self.completion_mask.sum(dim=1).long()

    @property
    def policy_mask(self) -> torch.Tensor:
        """The tokens the policy generated (what the loss trains on)."""
        return self.completion_mask if self.loss_mask is None else self.loss_mask

    def select_groups(self, groups: list[int]) -> "Rollout":
        rows = group_rows(groups, self.n)

        def pick(x):
            return None if x is None else x[rows]

        return Rollout(self.prompts.select(groups), self.n, self.completion_ids[rows], self.completion_mask[rows],
                       self.truncated[rows], [self.texts[i] for i in rows], pick(self.loss_mask),
                       None if self.media is None else [self.media[i] for i in rows],
                       None if self.token_keys is None else {k: v[rows] for k, v in self.token_keys.items()},
                       None if self.trajectories is None else [self.trajectories[i] for i in rows],
                       pick(self.logprobs))


def trajectory_summaries(rollout: Rollout) -> list[dict | None] | None:
    """Each row's trajectory record for the rewards (`Trajectory.summary()`), or None for single-turn rollouts."""
    if rollout.trajectories is None:
        return None
    return [t.summary() if t is not None else None for t in rollout.trajectories]


def concat_rollouts(parts: list[Rollout], pad_id: int) -> Rollout:
    """Rollouts of different prompt batches as one (responses right-padded to the longest)."""
    if len(parts) == 1:
        return parts[0]
    t = max(p.completion_ids.shape[1] for p in parts)

    def pad(x: torch.Tensor, fill) -> torch.Tensor:
        return torch.cat([x, x.new_full((x.shape[0], t - x.shape[1]), fill)], dim=1)

    multi = any(p.media is not None for p in parts)
    keys = sorted({k for p in parts for k in (p.token_keys or {})})
    return Rollout(
        concat_prompt_batches([p.prompts for p in parts], pad_id), parts[0].n,
        torch.cat([pad(p.completion_ids, pad_id) for p in parts]),
        torch.cat([pad(p.completion_mask, 0) for p in parts]),
        torch.cat([p.truncated for p in parts]), [x for p in parts for x in p.texts],
        loss_mask=None if all(p.loss_mask is None for p in parts) else torch.cat([pad(p.policy_mask, 0) for p in parts]),
        media=[m for p in parts for m in (p.media or [{}] * len(p.texts))] if multi else None,
        token_keys={k: torch.cat([pad(p.token_keys[k] if p.token_keys and k in p.token_keys
                                      else torch.zeros_like(p.completion_ids), 0) for p in parts])
                    for k in keys} or None,
        trajectories=[x for p in parts for x in (p.trajectories or [None] * len(p.texts))] if multi else None,
        logprobs=None if any(p.logprobs is None for p in parts) else torch.cat([pad(p.logprobs, 0.0) for p in parts]),
    )


def interleave_groups(a: Rollout, b: Rollout, pad_id: int) -> Rollout:
    """One rollout of `a`'s prompts with each group's `a.n` rows followed by the same group's `b.n` rows of `b`
    (the same prompts sampled another way, e.g. on perturbed images: rollout-time augmentation); single-turn
    rollouts only. The sampler's log-probs are dropped (they were taken on different inputs); the learner computes
    the old log-probs on `a`'s prompts."""
    if a.trajectories is not None or b.trajectories is not None or a.media or b.media:
        raise ValueError("interleave_groups: multi-turn rollouts cannot be interleaved")
    if len(a.prompts.samples) != len(b.prompts.samples):
        raise ValueError(f"interleave_groups: {len(a.prompts.samples)} vs {len(b.prompts.samples)} prompts")
    t = max(a.completion_ids.shape[1], b.completion_ids.shape[1])
    # (part, row) of each output row: group g's rows of a, then its rows of b
    order = [(src, i) for g in range(len(a.prompts.samples)) for src, n in ((0, a.n), (1, b.n))
             for i in group_rows([g], n)]

    def rows(field: str, fill) -> torch.Tensor:
        padded = [torch.cat([x, x.new_full((x.shape[0], t - x.shape[1]), fill)], dim=1)
                  for x in (getattr(a, field), getattr(b, field))]
        return torch.stack([padded[src][i] for src, i in order])

    parts = (a, b)
    return Rollout(a.prompts, a.n + b.n, rows("completion_ids", pad_id), rows("completion_mask", 0),
                   torch.stack([parts[src].truncated[i] for src, i in order]),
                   [parts[src].texts[i] for src, i in order])


class RolloutEngine(Protocol):
    def generate(self, prompts: PromptBatch, params: SamplingParams) -> Rollout: ...


def completion_mask_from_ids(ids: torch.Tensor, eos_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask of valid completion tokens (through the first end token) and whether each row was truncated."""
    is_end = torch.zeros_like(ids, dtype=torch.bool)
    for e in eos_ids:
        is_end |= ids == e
    ended = is_end.any(dim=1)
    # position of the first end token, or T when none
    first = torch.where(ended, is_end.int().argmax(dim=1), torch.full_like(ended, ids.shape[1], dtype=torch.long))
    pos = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
    mask = (pos <= first.unsqueeze(1)).float()
    return mask, ~ended


# name -> factory `fn(cfg, model, processor, *, rank=0, gather=None) -> engine` (`cfg` an `mmrft.config.Config`).
# Registered facts: `own_weights` (the engine samples from its own copy of the weights, so the trainer calls its
# `sync_weights(model)` after every update; otherwise it samples with the policy itself, whose full weights FSDP
# gathers for the sampling phase) and `check` (a `fn(rollout_cfg)` raising ConfigError, run before anything loads).
ROLLOUT_ENGINES: Registry = Registry("rollout engine", builtin_modules=("mmrft.rollout.hf", "mmrft.rollout.vllm"))


def check_rollout_engine(ro) -> None:
    """Fail before loading anything when the rollout engine cannot run here: an unknown name, or the engine's own
    check (vLLM: its settings, a CUDA device, the package), and `rollout.decoder`. `ro` is the `rollout` section."""
    from mmrft.rollout.decode import DECODERS

    if ro.decoder not in DECODERS:
        raise ConfigError(f"rollout.decoder: {ro.decoder!r} is not one of {', '.join(DECODERS)}")
    try:
        ROLLOUT_ENGINES[ro.engine]
    except KeyError:
        raise ConfigError(f"rollout.engine: {ro.engine!r} is not one of {', '.join(ROLLOUT_ENGINES)}") from None
    check = ROLLOUT_ENGINES.info(ro.engine).get("check")
    if check is not None:
        check(ro)
