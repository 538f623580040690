"""The transformers engine's sampling loop: one token per row per step from a KV cache, rows leaving the batch as
soon as they end.

Why not `generate`. `generate` steps every row until the last one ends: a row that wrote its end token is fed pad
tokens, through every layer, for the rest of the turn. In a rollout of G samples whose lengths spread widely (a
multi-turn step's tool calls are short, its answers long) most of the late steps are such rows. This loop removes a
row from the batch and from the KV cache once it ended, so each step costs what the rows still running need; and it
has none of `generate`'s per-step machinery (logits processors, stopping criteria, input preparation), which on a
small model is a sizeable share of a step. `rollout.decoder=generate` keeps `generate`.

What is sampled. The distribution the learner's log-probs describe: the logits with the suppressed tokens (media
placeholders) at -inf, divided by the temperature, then top-k, then top-p (`process_logits`, the order of
`generate`'s warpers); greedy decoding takes the argmax. Other settings a checkpoint's `generation_config` may carry
(a repetition penalty, say) are not applied: a rollout must come from the policy whose log-probs are trained.

Positions. The caller gives the position of each row's last token (M-RoPE's three rows for the Qwen-VL families,
`mmrft.models.positions.prompt_positions`); every generated token is text and takes the last position + 1, which
is what `generate` computes for these families.

Continuing a row later (`keep_cache`, multi-turn rollouts). A row that ended is kept one more step, so that its end
token enters the cache, then its cache is set aside; at the end the rows' caches are put back together, padded
after their end with masked columns, in the layout `generate` leaves (the cache of every column but the last).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch
from transformers.cache_utils import DynamicLayer

from mmrft.models.positions import reusing_cache

DECODERS = ("loop", "generate")  # `rollout.decoder`: this module's loop, or transformers' `generate`


@dataclass
class Decoded:
    """What `decode` wrote, for R rows over the `steps` it ran.

    tokens    LongTensor[R, steps]   sampled tokens; the pad id after a row's end token
    logprobs  FloatTensor[R, steps]  log-probs of the sampled tokens under the processed distribution (0 after the
                                     end), or None when not asked for
    cache     the KV cache of the R rows over the caller's columns and all generated columns but the last (masked
              after each row's end), when `keep_cache`; else None
    """

    tokens: torch.Tensor
    logprobs: Optional[torch.Tensor]
    cache: Any = None


def process_logits(logits: torch.Tensor, temperature: float, top_k: int = 0, top_p: float = 1.0,
                   suppress: Sequence[int] = ()) -> torch.Tensor:
    """The sampling scores of `logits` [R, V]: suppressed tokens at -inf; then, unless greedy (`temperature <= 0`),
    s = logits / temperature, tokens below the k-th highest score at -inf (`top_k > 0`), then the fewest highest
    tokens whose probability softmax(s) sums to at least `top_p` kept, the rest at -inf (`top_p < 1`; the top token
    is always kept). log_softmax of the result is the log-probability of each token as sampled."""
    scores = logits.float()
    if len(suppress):
        scores = scores.index_fill(-1, torch.as_tensor(list(suppress), device=scores.device), float("-inf"))
    if temperature <= 0:
        return scores
    scores = scores / temperature
    if 0 < top_k < scores.shape[-1]:
        kth = torch.topk(scores, top_k, dim=-1).values[..., -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p < 1.0:
        ordered, order = torch.sort(scores, dim=-1, descending=False)
        cumulative = ordered.softmax(-1).cumsum(-1)
        drop = cumulative <= 1 - top_p
        drop[..., -1] = False
        scores = scores.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return scores


def draw(scores: torch.Tensor, greedy: bool) -> torch.Tensor:
    """One token per row of `scores` [R, V]: the argmax, or a sample of softmax(scores)."""
    if greedy:
        return scores.argmax(-1)
    return torch.multinomial(scores.softmax(-1), 1).squeeze(-1)


@torch.no_grad()
def decode(model, logits: torch.Tensor, cache, mask: torch.Tensor, last_pos: torch.Tensor, params, *,
           eos_ids: Sequence[int], pad_id: int, suppress: Sequence[int] = (), keep_logprobs: bool = False,
           keep_cache: bool = False) -> Decoded:
    """Sample up to `params.max_new_tokens` tokens for each of R rows.

    logits    [R, V]  the next-token logits of each row (the prefill's last position)
    cache     the KV cache of the R rows over the columns of `mask` (every token fed so far)
    mask      [R, L]  attention mask of those columns (0 on padding and holes)
    last_pos  [R] (or [3, R] for M-RoPE)  the position of each row's last fed token
    params    `mmrft.rollout.engine.SamplingParams` (temperature, top_k, top_p, max_new_tokens)

    A row ends at its first token in `eos_ids`; `cache` is consumed (rows are removed from it as they end)."""
    rows_total, budget = logits.shape[0], params.max_new_tokens
    tokens = torch.full((rows_total, max(budget, 0)), pad_id, dtype=torch.long, device=logits.device)
    logprobs = torch.zeros(tokens.shape, dtype=torch.float32, device=logits.device) if keep_logprobs else None
    eos = torch.as_tensor(list(eos_ids), dtype=torch.long, device=logits.device)
    rows = torch.arange(rows_total, device=logits.device)  # the rows in the batch (and cache), in its order
    _make_room(cache, max(budget - 1, 0))
    set_aside: list[tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]] = []
    pos, steps = last_pos, 0
    for t in range(budget):
        scores = process_logits(logits, params.temperature, params.top_k, params.top_p, suppress)
        token = draw(scores, params.greedy)
        tokens[rows, t] = token
        if logprobs is not None:
            logprobs[rows, t] = scores.log_softmax(-1).gather(-1, token[:, None]).squeeze(-1)
        ended = torch.isin(token, eos)
        steps = t + 1
        if t == budget - 1 or bool(ended.all()):
            break
        if not keep_cache and bool(ended.any()):  # nothing to continue later: drop ended rows before feeding
            keep = (~ended).nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            rows, token, mask, pos, ended = rows[keep], token[keep], mask[keep], pos[..., keep], ended[keep]
        mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=1)
        pos = pos + 1
        with reusing_cache():
            out = model(input_ids=token[:, None], attention_mask=mask, position_ids=pos[..., None],
                        past_key_values=cache, use_cache=True, logits_to_keep=1)
        logits = out.logits[:, -1]
        if keep_cache and bool(ended.any()):  # their end token is cached now: set their cache aside
            gone, keep = ended.nonzero().squeeze(1), (~ended).nonzero().squeeze(1)
            set_aside.append((rows[gone], [(layer.keys[gone], layer.values[gone]) for layer in cache.layers]))
            cache.batch_select_indices(keep)
            rows, mask, pos, logits = rows[keep], mask[keep], pos[..., keep], logits[keep]
    _settle(cache)
    tokens = tokens[:, :steps]
    if logprobs is not None:
        logprobs = logprobs[:, :steps]
    if keep_cache:
        cache = _reassemble(cache, rows, set_aside, rows_total)
    return Decoded(tokens, logprobs, cache if keep_cache else None)


class _RoomyLayer(DynamicLayer):
    """A `DynamicLayer` whose keys and values sit at the front of a buffer with room for more tokens, so that a
    decode step writes its token in place. Hand-written because transformers' `DynamicLayer.update` concatenates,
    copying the layer's whole cache at every token (a fifth of a CPU multi-turn rollout, measured with py-spy in
    benchmarks/multiturn_step.py), and its `StaticLayer` attends over its whole fixed length every step."""

    def __init__(self, layer: DynamicLayer, room: int):
        super().__init__()
        keys, values = layer.keys, layer.values
        self.lazy_initialization(keys, values)
        self.length = keys.shape[-2]
        shape = (*keys.shape[:-2], self.length + room, keys.shape[-1])
        self._keys, self._values = keys.new_empty(shape), values.new_empty(shape)
        self._keys[..., : self.length, :], self._values[..., : self.length, :] = keys, values
        self._view()

    def _view(self) -> None:
        self.keys, self.values = self._keys[..., : self.length, :], self._values[..., : self.length, :]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        n = key_states.shape[-2]
        if self.length + n > self._keys.shape[-2]:  # out of room (not expected): grow like DynamicLayer
            self._keys = torch.cat([self.keys, key_states], dim=-2)
            self._values = torch.cat([self.values, value_states], dim=-2)
        else:
            self._keys[..., self.length: self.length + n, :] = key_states
            self._values[..., self.length: self.length + n, :] = value_states
        self.length += n
        self._view()
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._keys, self._values = self._keys[indices, ...], self._values[indices, ...]
        self._view()

    def plain(self) -> DynamicLayer:
        layer = DynamicLayer()
        layer.lazy_initialization(self.keys, self.values)
        layer.keys, layer.values = self.keys, self.values
        return layer


def _make_room(cache, room: int) -> None:
    """Give each plain dynamic layer of `cache` room for `room` more tokens (`_RoomyLayer`)."""
    if room > 0 and hasattr(cache, "layers"):
        cache.layers = [_RoomyLayer(layer, room) if type(layer) is DynamicLayer and layer.is_initialized else layer
                        for layer in cache.layers]


def _settle(cache) -> None:
    """Plain `DynamicLayer`s again (the cache goes on to code that expects transformers' own layers)."""
    if hasattr(cache, "layers"):
        cache.layers = [layer.plain() if isinstance(layer, _RoomyLayer) else layer for layer in cache.layers]


def _reassemble(cache, rows: torch.Tensor, set_aside, rows_total: int):
    """One cache of all `rows_total` rows again: those still in `cache` (at its full length) and those set aside
    (shorter: zero columns after their end, which the caller's mask hides)."""
    for i, layer in enumerate(cache.layers):
        keys, values = layer.keys, layer.values
        shape = (rows_total, keys.shape[1], keys.shape[2], keys.shape[3])
        full_k, full_v = keys.new_zeros(shape), values.new_zeros(shape)
        full_k[rows], full_v[rows] = keys, values
        for which, parts in set_aside:
            k, v = parts[i]
            full_k[which, :, : k.shape[2]], full_v[which, :, : v.shape[2]] = k, v
        layer.keys, layer.values = full_k, full_v
    return cache
