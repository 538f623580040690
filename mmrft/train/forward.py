"""Training forward: prompt + completion -> per-token log-probs (and entropy) of the completion tokens.

A rollout batch holds B prompts with n completions each. Two exact ways to score it:

- expanded: B*n sequences "left-padded prompt + right-padded completion", the layout `generate` produced, in one
  forward pass. Works for every model; the prompt (and its image) is computed n times.
- shared prompt: the B prompts go through the model once (the vision tower sees each image once), their KV cache
  is repeated n times, and the n completions continue from it with the positions `generate` gave them. The prompt
  tokens' states do not depend on the completions (causal attention), so the log-probs and gradients are the same;
  the work on prompt tokens drops n-fold. Used unless activation checkpointing (which disables the cache) is on;
  positions come from `mmrft.models.positions`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mmrft.algorithms import entropy_from_logits
from mmrft.data.collate import PromptBatch
from mmrft.rollout.engine import group_rows
from mmrft.models.positions import continue_positions, prompt_positions, reusing_cache, supports_cache_reuse

# Keys the processor returns per token; they are extended over the completion with zeros (plain text tokens).
PER_TOKEN_KEYS = ("mm_token_type_ids", "token_type_ids")


@dataclass
class SequenceBatch:
    """B prompts and their completions in prompt-major order (row i belongs to prompt i // n)."""

    prompts: PromptBatch
    completion_ids: torch.Tensor  # [B*n, T]
    completion_mask: torch.Tensor  # [B*n, T]
    n: int
    # tokens generation never samples (media placeholders): masked out of the training distribution as well, so
    # the log-probs are those of the distribution the completions were actually drawn from
    suppressed_ids: tuple[int, ...] = ()
    share_prompt: bool = True  # False: always score the expanded sequences (see rollout.share_prompt_forward)

    @property
    def size(self) -> int:
        return int(self.completion_ids.shape[0])

    @property
    def num_groups(self) -> int:
        return len(self.prompts.samples)

    @property
    def width(self) -> int:
        """Completion columns (T)."""
        return int(self.completion_ids.shape[1])

    def group_lengths(self) -> list[int]:
        """Each group's longest completion, in tokens (the width its micro-batch needs)."""
        per_row = self.completion_mask.sum(dim=1).view(self.num_groups, self.n)
        return [int(x) for x in per_row.max(dim=1).values]

    def select_groups(self, groups: list[int], trim: bool = False) -> "SequenceBatch":
        """Groups `groups` in that order. `trim`: drop the trailing completion columns that are padding in every
        selected row (exact: the completion mask is a prefix, and no valid token attends to later ones)."""
        rows = group_rows(groups, self.n)
        ids, mask = self.completion_ids[rows], self.completion_mask[rows]
        if trim and len(rows):
            t = max(int(mask.sum(dim=1).max()), 1)
            ids, mask = ids[:, :t], mask[:, :t]
        return SequenceBatch(self.prompts.select(groups), ids, mask, self.n, self.suppressed_ids, self.share_prompt)

    def widened(self, width: int) -> "SequenceBatch":
        """The same batch with masked padding columns up to `width` completion columns."""
        extra = width - self.width
        if extra <= 0:
            return self
        ids = torch.cat([self.completion_ids, self.completion_ids.new_zeros(self.size, extra)], dim=1)
        mask = torch.cat([self.completion_mask, self.completion_mask.new_zeros(self.size, extra)], dim=1)
        return SequenceBatch(self.prompts, ids, mask, self.n, self.suppressed_ids, self.share_prompt)

    def expanded_inputs(self) -> dict[str, torch.Tensor]:
        """Model inputs of the B*n full sequences (prompt repeated n times, then the completion)."""
        rep = self.prompts.select(list(range(self.num_groups)), repeat=self.n).inputs
        ids, mask = self.completion_ids, self.completion_mask
        out = dict(rep)
        out["input_ids"] = torch.cat([rep["input_ids"], ids], dim=1)
        out["attention_mask"] = torch.cat([rep["attention_mask"], mask.to(rep["attention_mask"].dtype)], dim=1)
        for key in PER_TOKEN_KEYS:
            if key in rep:
                out[key] = torch.cat([rep[key], torch.zeros_like(ids, dtype=rep[key].dtype)], dim=1)
        return out


def build_sequences(
    prompts: PromptBatch, completion_ids: torch.Tensor, completion_mask: torch.Tensor, n: int,
    suppressed_ids: list[int] | tuple[int, ...] = (), share_prompt: bool = True,
) -> SequenceBatch:
    return SequenceBatch(prompts, completion_ids, completion_mask, n, tuple(suppressed_ids), share_prompt)


def _finish(logits: torch.Tensor, targets: torch.Tensor, batch: SequenceBatch, temperature: float, with_entropy: bool):
    logits = logits.float()
    if temperature > 0 and temperature != 1.0:
        logits = logits / temperature
    if batch.suppressed_ids:  # out of place: `logits` may be a view of the model's output (FSDP hooks it)
        ids = torch.tensor(batch.suppressed_ids, device=logits.device)
        logits = logits.index_fill(-1, ids, float("-inf"))
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    entropy = entropy_from_logits(logits) if with_entropy else None
    return logp, entropy


def _logits_expanded(model, batch: SequenceBatch) -> torch.Tensor:
    t = batch.completion_ids.shape[1]
    out = model(**batch.expanded_inputs(), use_cache=False, logits_to_keep=t + 1)
    return out.logits[:, -(t + 1) : -1, :]


def _logits_shared(model, batch: SequenceBatch) -> torch.Tensor:
    prompt = batch.prompts.inputs
    n, t = batch.n, batch.completion_ids.shape[1]
    pos, _ = prompt_positions(model, prompt)
    out = model(**prompt, position_ids=pos, use_cache=True, logits_to_keep=1)
    with reusing_cache():
        cache = out.past_key_values
    cache.batch_repeat_interleave(n)
    first = out.logits[:, -1:, :].repeat_interleave(n, dim=0)  # predicts each completion's first token
    ids = batch.completion_ids[:, :-1]  # the last token predicts nothing we score
    mask = torch.cat([prompt["attention_mask"].repeat_interleave(n, dim=0),
                      batch.completion_mask[:, :-1].to(prompt["attention_mask"].dtype)], dim=1)
    cont = continue_positions(pos, t - 1).repeat_interleave(n, dim=-2)
    with reusing_cache():
        rest = model(input_ids=ids, attention_mask=mask, position_ids=cont, past_key_values=cache, use_cache=True)
    return torch.cat([first, rest.logits], dim=1)


def _logits(model, batch: SequenceBatch, shared_prompt: bool | None) -> torch.Tensor:
    """Per-position outputs predicting each completion token; `shared_prompt=None` picks the shared-prompt path when
    it applies (the batch allows it, a group has several completions, the model keeps its KV cache)."""
    if shared_prompt is None:
        shared_prompt = batch.share_prompt and batch.n > 1 and supports_cache_reuse(model)
    if not shared_prompt:
        return _logits_expanded(model, batch)
    if batch.width == 1:  # the continuation pass needs one input token: score one more (masked) column and drop it,
        # so the shared path always makes its two passes (under FSDP every rank must make the same passes)
        return _logits_shared(model, batch.widened(2))[:, :1]
    return _logits_shared(model, batch)


def completion_values(critic, batch: SequenceBatch, shared_prompt: bool | None = None) -> torch.Tensor:
    """Values [B*n, T] of the states that predict each completion token, from a `mmrft.models.value.ValueModel`
    (its one-channel "logits"), by the same two exact paths as the log-probs."""
    return _logits(critic, batch, shared_prompt).squeeze(-1).float()


def completion_logprobs(
    model, batch: SequenceBatch, temperature: float = 1.0, with_entropy: bool = False, shared_prompt: bool | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs [B*n, T] of the completion tokens under `model` at `temperature` (the sampling distribution), and
    optionally the token entropy [B*n, T]. `shared_prompt=None` picks the shared-prompt path when it applies."""
    logits = _logits(model, batch, shared_prompt)
    return _finish(logits, batch.completion_ids, batch, temperature, with_entropy)
