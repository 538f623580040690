"""Continuing multi-turn rows from their KV cache instead of prefilling their whole sequence again at every turn.

After a turn, `generate` leaves a KV cache of every token it saw. The next turn of a row appends only its tool turn
(text and the returned images) to that cache — one forward pass over the new tokens, the new images encoded once —
and `generate` continues from there. The prompt, its images and the earlier turns are never computed again, which
is what makes long trajectories with many images affordable (`MultiTurnEngine(reuse_cache=True)`,
`rollout.reuse_turn_cache`).

The rows of a batch sit at different lengths. Each row's tool turn is therefore appended after masked *holes*
(padding inside the sequence, attention mask 0) so that all rows end at the same column, and the tokens `generate`
wrote after a row's end-of-turn token are masked the same way. Positions count attended tokens only (the model's
own M-RoPE index over the whole sequence for Qwen-VL, the attention mask's running count otherwise), so a row's
tokens get the positions they would get without holes, and the training forward, which scores each trajectory
without holes, reproduces the sampler's log-probs (tested).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from mmrft.data.collate import PER_TOKEN_KEYS, PromptBatch
from mmrft.models.positions import base_model, prompt_positions, reusing_cache, uses_mrope

GRID_KEY = "image_grid_thw"


@dataclass
class TurnState:
    """A batch of rows as `generate` left them, to continue from.

    ids      LongTensor[R, L]   every token of each row so far, left padded (holes and pads after an end included)
    mask     LongTensor[R, L]   1 on the row's real tokens
    keys     per-token processor keys [R, L] (e.g. mm_token_type_ids)
    grids    per row, the image grid rows of all its images so far (Qwen-VL's M-RoPE index needs them), or None
    cache    the KV cache of ids[:, :-1] (the last token is fed by the next pass)
    """

    ids: torch.Tensor
    mask: torch.Tensor
    keys: dict[str, torch.Tensor]
    grids: list[Optional[torch.Tensor]]
    cache: Any


@dataclass
class Segment:
    """A row's tool turn: its token ids, per-token keys and media tensors (`mmrft.data.turns.encode_tool_turn`)."""

    ids: list[int]
    keys: dict[str, list[int]] = field(default_factory=dict)
    media: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class Turn:
    """One assistant turn of a batch of rows (the attributes `MultiTurnEngine` reads of a `Rollout`)."""

    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    truncated: torch.Tensor
    texts: list[str]
    logprobs: Optional[torch.Tensor] = None


def supports_turn_cache(engine, model) -> bool:
    """Whether rows can be continued from their cache: the engine is `generate` with the policy itself, the model
    keeps a KV cache (activation checkpointing turns it off), and its family is one where continuing was checked to
    reproduce the training forward: the Qwen-VL families (M-RoPE). Gemma 3 is not (its image tokens attend to each
    other both ways, which a cached continuation does not reproduce: log-probs off by up to 0.06); other families
    prefill each row again."""
    from mmrft.models.families import family_of
    from mmrft.models.positions import supports_cache_reuse

    return (hasattr(engine, "sample") and hasattr(engine, "read_turn") and family_of(model).mrope
            and supports_cache_reuse(model))


def first_turn(engine, prompts: PromptBatch, params) -> tuple[Turn, TurnState]:
    """The first assistant turn of every row (each prompt prefilled once for its n samples), and the state to
    continue the rows from."""
    rollout, sequences, cache = engine.sample(prompts, params, keep_cache=True)
    n, p = params.n, prompts.prompt_len
    prompt_mask = prompts.inputs["attention_mask"].repeat_interleave(n, dim=0)
    generated = torch.zeros_like(sequences[:, p:])
    generated[:, : rollout.completion_mask.shape[1]] = rollout.completion_mask.to(generated.dtype)
    mask = torch.cat([prompt_mask.to(generated.dtype), generated[:, : sequences.shape[1] - p]], dim=1)
    keys = {k: torch.cat([prompts.inputs[k].repeat_interleave(n, dim=0),
                          torch.zeros_like(sequences[:, p:])], dim=1) for k in PER_TOKEN_KEYS if k in prompts.inputs}
    grids: list[Optional[torch.Tensor]] = [None] * len(sequences)
    if GRID_KEY in prompts.inputs:
        spans = prompts.media_spans()[GRID_KEY]
        grids = [prompts.inputs[GRID_KEY][slice(*spans[r // n])] for r in range(len(sequences))]
    turn = Turn(rollout.completion_ids, rollout.completion_mask, rollout.truncated, rollout.texts, rollout.logprobs)
    return turn, TurnState(sequences, mask, keys, grids, cache)


@torch.no_grad()
def next_turn(engine, model, state: TurnState, keep: list[int], segments: list[Segment], params) -> tuple[Turn, TurnState]:
    """Rows `keep` of `state` (in that order), each with its tool turn `segments[i]` appended, continued for one more
    assistant turn."""
    idx = torch.tensor(keep, dtype=torch.long)
    cache = state.cache
    cache.batch_select_indices(idx.to(state.ids.device))
    ids, mask = state.ids[idx], state.mask[idx]
    keys = {k: v[idx] for k, v in state.keys.items()}
    width = max(len(s.ids) for s in segments)
    pad = engine.pad_id

    def holes_then(values: list[list[int]], fill: int) -> torch.Tensor:
        return torch.tensor([[fill] * (width - len(v)) + v for v in values], dtype=torch.long, device=ids.device)

    full_ids = torch.cat([ids, holes_then([s.ids for s in segments], pad)], dim=1)
    full_mask = torch.cat([mask, holes_then([[1] * len(s.ids) for s in segments], 0).to(mask.dtype)], dim=1)
    full_keys = {k: torch.cat([v, holes_then([s.keys.get(k, [0] * len(s.ids)) for s in segments], 0).to(v.dtype)],
                              dim=1) for k, v in keys.items()}
    grids = [_cat(state.grids[i], s.media.get(GRID_KEY)) for i, s in zip(keep, segments)]
    media: dict[str, torch.Tensor] = {}
    for key in dict.fromkeys(k for s in segments for k in s.media):
        media[key] = torch.cat([s.media[key] for s in segments if key in s.media]).to(ids.device)
    inputs = {"input_ids": full_ids, "attention_mask": full_mask, **full_keys}
    if uses_mrope(model, inputs):
        inputs[GRID_KEY] = torch.cat([g for g in grids if g is not None]).to(ids.device)
    pos, deltas = prompt_positions(model, inputs)
    start = ids.shape[1] - 1  # the row's previous last token, never cached, comes first
    was_training = model.training
    model.eval()
    try:
        if getattr(engine, "decoder", "generate") == "loop":
            sequences, cache, decoded = _loop_turn(engine, model, cache, inputs, full_keys, media, pos, start, params)
        else:
            sequences, cache, decoded = _generate_turn(engine, model, cache, inputs, full_keys, media, pos, deltas,
                                                       start, params)
    finally:
        model.train(was_training)
    width = full_ids.shape[1]
    new_ids, new_mask, truncated, texts, logprobs = engine.read_turn(sequences, width, *decoded)
    generated = torch.zeros_like(sequences[:, width:])
    generated[:, : new_mask.shape[1]] = new_mask.to(generated.dtype)
    generated = generated[:, : sequences.shape[1] - width]
    state = TurnState(sequences, torch.cat([full_mask, generated.to(full_mask.dtype)], dim=1),
                      {k: torch.cat([v, torch.zeros_like(generated).to(v.dtype)], dim=1) for k, v in full_keys.items()},
                      grids, cache)
    return Turn(new_ids, new_mask, truncated, texts, logprobs), state


def _loop_turn(engine, model, cache, inputs, keys, media, pos, start, params):
    """The tool turns fed in one pass (its logits start the next turn), then mmrft's loop
    (`mmrft.rollout.decode`)."""
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    with reusing_cache():
        out = model(input_ids=ids[:, start:], attention_mask=mask, position_ids=pos[..., start:], past_key_values=cache,
                    use_cache=True, logits_to_keep=1, **{k: v[:, start:] for k, v in keys.items()}, **media)
    decoded = engine.decode_from(out.logits[:, -1], cache, mask, pos[..., -1], params, keep_cache=True)
    return torch.cat([ids, decoded.tokens], dim=1), decoded.cache, (None, decoded)


def _generate_turn(engine, model, cache, inputs, keys, media, pos, deltas, start, params):
    """The tool turns fed but their last token, then `generate`, which feeds that token and continues."""
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    end = ids.shape[1] - 1
    with reusing_cache():
        model(input_ids=ids[:, start:end], attention_mask=mask[:, :end], position_ids=pos[..., start:end],
              past_key_values=cache, use_cache=True, logits_to_keep=1, **{k: v[:, start:end] for k, v in keys.items()},
              **media)
    if deltas is not None:  # Qwen-VL's generate continues M-RoPE positions from the stored deltas
        base_model(model).model.rope_deltas = deltas
    common = engine.generation_kwargs(params)
    common.update(return_dict_in_generate=True)
    with reusing_cache():
        out = model.generate(input_ids=ids, attention_mask=mask, past_key_values=cache, **keys, **common)
    return out.sequences, out.past_key_values, (getattr(out, "scores", None), None)


def _cat(a: Optional[torch.Tensor], b: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    if a is None:
        return b
    return a if b is None else torch.cat([a, b.to(a.device)])
