"""A batch of different prompts that begin alike, scored with their common beginning computed once.

Every prompt of a run starts with the same tokens up to its first image: the chat template's system turn and, in a
tool-use run, the whole tool list (about 300 tokens for Qwen's, several times the rest of a short prompt). A
supervised batch of B samples would compute that prefix B times. `shared_prefix_batch` rewrites the batch as one
group: the common text prefix is its "prompt" (computed once, its KV cache continued by every row), and each row's
"completion" is the rest of its prompt (its image included) followed by its answer, with loss weight 0 on the prompt
part. The training forward already scores such groups exactly (`mmrft.train.forward`: responses that carry images,
positions from the model's own M-RoPE index over each whole sequence), so the log-probs and gradients are those of
the B separate sequences; the work on the prefix drops B-fold.
"""

from __future__ import annotations

from typing import Optional

import torch

from mmrft.data.collate import PER_TOKEN_KEYS, PromptBatch
from mmrft.train.forward import SequenceBatch, build_sequences

MIN_SHARED_PREFIX = 16  # tokens: below this the second forward pass costs more than the prefix saves


def common_prefix_length(rows: list[list[int]], stop_ids: set[int]) -> int:
    """Length of the longest common prefix of `rows`, cut before the first token in `stop_ids` (a media placeholder:
    its features differ from row to row even where the tokens are equal) and short of every row's full length."""
    if not rows:
        return 0
    limit = min(len(r) for r in rows) - 1  # every row keeps at least one token of its own
    n = 0
    while n < limit and rows[0][n] not in stop_ids and all(r[n] == rows[0][n] for r in rows[1:]):
        n += 1
    return n


def _cat_media(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    out: dict[str, list[torch.Tensor]] = {}
    for part in parts:
        for k, v in part.items():
            out.setdefault(k, []).append(v)
    return {k: torch.cat(v) for k, v in out.items()}


def shared_prefix_batch(prompts: PromptBatch, answer_ids: torch.Tensor, answer_weights: torch.Tensor,
                        answer_mask: torch.Tensor, answer_keys: Optional[dict[str, torch.Tensor]],
                        answer_media: Optional[list[dict[str, torch.Tensor]]], stop_ids: list[int], pad_id: int,
                        suppressed_ids: tuple[int, ...] = ()) -> Optional[tuple[SequenceBatch, torch.Tensor]]:
    """(batch, loss weights) of B prompts and their right-padded answers rewritten as one group whose prompt is
    their common prefix (see the module docstring); None when the prefix is shorter than MIN_SHARED_PREFIX, the
    batch has one row, or its prompts carry videos or audio. `answer_*`: [B, T] tensors (ids, loss weights, attention), per-token keys and each row's
    media (e.g. a tool-use trajectory's returned images); `stop_ids`: media placeholder ids; `pad_id` pads."""
    b = len(prompts.samples)
    if any(prompts.videos_per_prompt) or any(prompts.audios_per_prompt):
        return None  # the trajectory forward places images in responses; videos and audio keep the separate path
    att = prompts.inputs["attention_mask"].bool()
    rows = [prompts.inputs["input_ids"][i][att[i]].tolist() for i in range(b)]
    n = common_prefix_length(rows, set(stop_ids))
    if b < 2 or n < MIN_SHARED_PREFIX:
        return None
    device = prompts.inputs["input_ids"].device
    keys = [k for k in PER_TOKEN_KEYS if k in prompts.inputs]
    prefix = PromptBatch(prompts.samples[:1], {
        "input_ids": torch.tensor([rows[0][:n]], device=device),
        "attention_mask": torch.ones(1, n, dtype=prompts.inputs["attention_mask"].dtype, device=device),
        **{k: prompts.inputs[k][0][att[0]][None, :n] for k in keys}}, [0], layout={})
    lengths = answer_mask.sum(dim=1).long().tolist()
    ids, weights, tails, media = [], [], {k: [] for k in set(keys) | set(answer_keys or {})}, []
    for i in range(b):
        rest = rows[i][n:]
        m = int(lengths[i])
        ids.append(rest + answer_ids[i, :m].tolist())
        weights.append([0.0] * len(rest) + answer_weights[i, :m].tolist())
        for k in tails:
            head = prompts.inputs[k][i][att[i]][n:].tolist() if k in prompts.inputs else [0] * len(rest)
            tail = answer_keys[k][i, :m].tolist() if answer_keys and k in answer_keys else [0] * m
            tails[k].append(head + tail)
        own = {k: v for k, v in prompts.select([i]).inputs.items() if k in prompts.layout}
        media.append(_cat_media([own, (answer_media or [{}] * b)[i] or {}]))
    width = max(len(r) for r in ids)

    def pad(values: list[list], fill, dtype) -> torch.Tensor:
        return torch.tensor([v + [fill] * (width - len(v)) for v in values], dtype=dtype, device=device)

    batch = build_sequences(prefix, pad(ids, pad_id, torch.long), pad([[1.0] * len(r) for r in ids], 0.0,
                                                                      answer_mask.dtype),
                            n=b, suppressed_ids=suppressed_ids, response_media=media,
                            response_keys={k: pad(v, 0, torch.long) for k, v in tails.items()} or None)
    return batch, pad(weights, 0.0, answer_weights.dtype)
