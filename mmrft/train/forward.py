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
from mmrft.data.collate import PER_TOKEN_KEYS, PromptBatch, media_with_responses
from mmrft.rollout.engine import group_rows
from mmrft.models.positions import continue_positions, prompt_positions, reusing_cache, supports_cache_reuse
from mmrft.rollout.decode import process_logits



@dataclass
class SequenceBatch:
    """B prompts and their completions in prompt-major order (row i belongs to prompt i // n).

    A completion may be a multi-turn trajectory: then `completion_mask` covers every response token (the model's and
    the tool turns'), `response_media[i]` holds the media tensors of the images its tool turns returned and
    `response_keys` the per-token processor keys of the responses (e.g. `mm_token_type_ids`). Such a batch is scored
    on the expanded sequences, with every image and the model's own positions over the whole sequence."""

    prompts: PromptBatch
    completion_ids: torch.Tensor  # [B*n, T]
    completion_mask: torch.Tensor  # [B*n, T]
    n: int
    # tokens generation never samples (media placeholders): masked out of the training distribution as well, so
    # the log-probs are those of the distribution the completions were actually drawn from
    suppressed_ids: tuple[int, ...] = ()
    share_prompt: bool = True  # False: always score the expanded sequences (see rollout.share_prompt_forward)
    response_media: list[dict[str, torch.Tensor]] | None = None
    response_keys: dict[str, torch.Tensor] | None = None

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

    @property
    def multi_turn(self) -> bool:
        """Whether the responses hold tool turns with media or processor token keys (scored expanded)."""
        return bool(self.response_keys) or any(self.response_media or ())

    def group_lengths(self) -> list[int]:
        """Each group's longest completion, in tokens (the width its micro-batch needs)."""
        per_row = self.completion_mask.sum(dim=1).view(self.num_groups, self.n)
        return [int(x) for x in per_row.max(dim=1).values]

    def _replace(self, prompts: PromptBatch, rows, ids: torch.Tensor, mask: torch.Tensor) -> "SequenceBatch":
        t = ids.shape[1]
        media = None if self.response_media is None else [self.response_media[i] for i in rows]
        keys = None if self.response_keys is None else {k: v[rows][:, :t] if rows is not None else v[:, :t]
                                                         for k, v in self.response_keys.items()}
        return SequenceBatch(prompts, ids, mask, self.n, self.suppressed_ids, self.share_prompt, media, keys)

    def select_groups(self, groups: list[int], trim: bool = False) -> "SequenceBatch":
        """Groups `groups` in that order. `trim`: drop the trailing completion columns that are padding in every
        selected row (exact: the completion mask is a prefix, and no valid token attends to later ones)."""
        rows = group_rows(groups, self.n)
        ids, mask = self.completion_ids[rows], self.completion_mask[rows]
        if trim and len(rows):
            t = max(int(mask.sum(dim=1).max()), 1)
            ids, mask = ids[:, :t], mask[:, :t]
        return self._replace(self.prompts.select(groups), rows, ids, mask)

    def widened(self, width: int) -> "SequenceBatch":
        """The same batch with masked padding columns up to `width` completion columns."""
        extra = width - self.width
        if extra <= 0:
            return self
        ids = torch.cat([self.completion_ids, self.completion_ids.new_zeros(self.size, extra)], dim=1)
        mask = torch.cat([self.completion_mask, self.completion_mask.new_zeros(self.size, extra)], dim=1)
        out = SequenceBatch(self.prompts, ids, mask, self.n, self.suppressed_ids, self.share_prompt,
                            self.response_media, self.response_keys)
        if self.response_keys:
            out.response_keys = {k: torch.cat([v, v.new_zeros(self.size, extra)], dim=1)
                                 for k, v in self.response_keys.items()}
        return out

    def expanded_inputs(self) -> dict[str, torch.Tensor]:
        """Model inputs of the B*n full sequences (prompt repeated n times, then the response; a response's tool-turn
        media after its prompt's)."""
        rep = self.prompts.select(list(range(self.num_groups)), repeat=self.n).inputs
        ids, mask = self.completion_ids, self.completion_mask
        out = dict(rep)
        out["input_ids"] = torch.cat([rep["input_ids"], ids], dim=1)
        out["attention_mask"] = torch.cat([rep["attention_mask"], mask.to(rep["attention_mask"].dtype)], dim=1)
        for key in PER_TOKEN_KEYS:
            if key in rep:
                tail = (self.response_keys or {}).get(key)
                tail = torch.zeros_like(ids) if tail is None else tail[:, : ids.shape[1]]
                out[key] = torch.cat([rep[key], tail.to(device=ids.device, dtype=rep[key].dtype)], dim=1)
        if any(self.response_media or ()):
            rows = [i // self.n for i in range(self.size)]
            out.update(media_with_responses(self.prompts, rows, self.response_media))
        return out


def build_sequences(
    prompts: PromptBatch, completion_ids: torch.Tensor, completion_mask: torch.Tensor, n: int,
    suppressed_ids: list[int] | tuple[int, ...] = (), share_prompt: bool = True,
    response_media: list[dict[str, torch.Tensor]] | None = None, response_keys: dict[str, torch.Tensor] | None = None,
) -> SequenceBatch:
    return SequenceBatch(prompts, completion_ids, completion_mask, n, tuple(suppressed_ids), share_prompt,
                         response_media, response_keys)


def _finish(logits: torch.Tensor, targets: torch.Tensor, batch: SequenceBatch, temperature: float, with_entropy: bool):
    # the sampler's own processing (suppressed tokens, temperature), out of place: `logits` may be a view of the
    # model's output (FSDP hooks it); no top-k/p: the learner scores the tempered distribution
    logits = process_logits(logits, temperature, suppress=batch.suppressed_ids)
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    if batch.suppressed_ids:
        # a suppressed token is never sampled, so it can only be context the policy did not write (an image
        # placeholder in a tool turn): log-prob 0 there instead of -inf, which no mask should have to contain
        ids = torch.tensor(batch.suppressed_ids, device=targets.device)
        logp = torch.where(torch.isin(targets, ids), torch.zeros_like(logp), logp)
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
    extra: dict[str, torch.Tensor] = {}
    if batch.multi_turn:  # tool turns inside the responses: their images, and positions over the whole sequences
        cont = _response_positions(model, batch)[..., :-1]
        extra = {k: v[:, : t - 1].to(ids.device) for k, v in (batch.response_keys or {}).items()}
        for key in dict.fromkeys(k for m in batch.response_media or () for k in m):
            extra[key] = torch.cat([m[key] for m in batch.response_media if key in m]).to(ids.device)
    else:
        cont = continue_positions(pos, t - 1).repeat_interleave(n, dim=-2)
    with reusing_cache():
        rest = model(input_ids=ids, attention_mask=mask, position_ids=cont, past_key_values=cache, use_cache=True,
                     **extra)
    return torch.cat([first, rest.logits], dim=1)


def _response_positions(model, batch: SequenceBatch) -> torch.Tensor:
    """The positions of the response tokens ([3, B*n, T] M-RoPE), from the model's own index over the whole sequences:
    images in tool turns move the positions after them, so they cannot be counted on from the prompt's."""
    rep = batch.prompts.select(list(range(batch.num_groups)), repeat=batch.n).inputs
    p = rep["input_ids"].shape[1]
    full = {"input_ids": torch.cat([rep["input_ids"], batch.completion_ids], dim=1),
            "attention_mask": torch.cat([rep["attention_mask"], batch.completion_mask.to(rep["attention_mask"].dtype)],
                                        dim=1)}
    for key in PER_TOKEN_KEYS:
        if key in rep:
            tail = (batch.response_keys or {}).get(key)
            tail = torch.zeros_like(batch.completion_ids) if tail is None else tail[:, : batch.width]
            full[key] = torch.cat([rep[key], tail.to(device=rep[key].device, dtype=rep[key].dtype)], dim=1)
    if "image_grid_thw" in batch.prompts.inputs or any("image_grid_thw" in m for m in batch.response_media or ()):
        spans = batch.prompts.media_spans().get("image_grid_thw")
        grids = []
        for i in range(batch.size):  # row i: its prompt's image grids, then those of its tool turns' images
            if spans is not None:
                grids.append(batch.prompts.inputs["image_grid_thw"][slice(*spans[i // batch.n])])
            if batch.response_media and "image_grid_thw" in batch.response_media[i]:
                grids.append(batch.response_media[i]["image_grid_thw"].to(batch.completion_ids.device))
        full["image_grid_thw"] = torch.cat(grids)
    pos, _ = prompt_positions(model, full)
    return pos[..., p:]


def shares_prompt_with_trajectories(model) -> bool:
    """Whether trajectories with tool turns can be scored with the prompt computed once per group: for the Qwen-VL
    families (M-RoPE positions from the model's own index; checked against the expanded sequences). Others score
    them expanded."""
    from mmrft.models.families import family_of

    return family_of(model).mrope


def _logits(model, batch: SequenceBatch, shared_prompt: bool | None) -> torch.Tensor:
    """Per-position outputs predicting each completion token; `shared_prompt=None` picks the shared-prompt path when
    it applies (the batch allows it, a group has several completions, the model keeps its KV cache)."""
    if shared_prompt is None:
        shared_prompt = (batch.share_prompt and batch.n > 1 and supports_cache_reuse(model)
                         and (not batch.multi_turn or shares_prompt_with_trajectories(model)))
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
