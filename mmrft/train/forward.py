"""Training forward: prompt + completion sequences -> per-token log-probs (and entropy) of the completion tokens.

Sequences are the left-padded prompt followed by the right-padded completion, exactly the layout `generate`
produced, so the positions (Qwen2-VL's M-RoPE included) match the ones the tokens were sampled at.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mmrft.data.collate import PromptBatch

# Keys the processor returns per token; they are extended over the completion with zeros (plain text tokens).
PER_TOKEN_KEYS = ("mm_token_type_ids", "token_type_ids")


@dataclass
class SequenceBatch:
    """N = B*n sequences. `media` holds the per-image tensors (e.g. pixel_values rows, image_grid_thw rows), with
    `media_rows[k][i]` = (start, end) of sequence i's rows in `media[k]`, so any subset can be cut out."""

    inputs: dict[str, torch.Tensor]
    media: dict[str, torch.Tensor]
    media_rows: dict[str, list[tuple[int, int]]]
    prompt_len: int
    # tokens generation never samples (media placeholders): masked out of the training distribution as well, so
    # the log-probs are those of the distribution the completions were actually drawn from
    suppressed_ids: tuple[int, ...] = ()

    @property
    def size(self) -> int:
        return int(self.inputs["input_ids"].shape[0])

    def select(self, idx: list[int]) -> "SequenceBatch":
        inputs = {k: v[idx] for k, v in self.inputs.items()}
        media, rows = {}, {}
        for k, t in self.media.items():
            spans = [self.media_rows[k][i] for i in idx]
            parts = [t[a:b] for a, b in spans]
            media[k] = torch.cat(parts) if parts else t[:0]
            starts, pos = [], 0
            for a, b in spans:
                starts.append((pos, pos + b - a))
                pos += b - a
            rows[k] = starts
        return SequenceBatch(inputs, media, rows, self.prompt_len, self.suppressed_ids)

    def model_inputs(self) -> dict[str, torch.Tensor]:
        return {**self.inputs, **self.media}


def _media_spans(prompts: PromptBatch) -> dict[str, list[tuple[int, int]]]:
    """Per-prompt row spans of each media tensor. Qwen-style processors flatten all images' patches into one
    `pixel_values` tensor and give one `image_grid_thw` row per image; the patch count of image j is prod(thw_j)."""
    spans: dict[str, list[tuple[int, int]]] = {}
    inputs = prompts.inputs
    if "image_grid_thw" in inputs:
        grid = inputs["image_grid_thw"]
        per_image = grid.prod(dim=1).tolist()
        img_spans, patch_spans, img, patch = [], [], 0, 0
        for count in prompts.images_per_prompt:
            n_patch = int(sum(per_image[img : img + count]))
            img_spans.append((img, img + count))
            patch_spans.append((patch, patch + n_patch))
            img += count
            patch += n_patch
        spans["image_grid_thw"] = img_spans
        spans["pixel_values"] = patch_spans
    elif "pixel_values" in inputs:  # one image tensor per prompt row (LLaVA-style)
        b = inputs["pixel_values"].shape[0]
        spans["pixel_values"] = [(i, i + 1) for i in range(b)]
    return spans


def build_sequences(
    prompts: PromptBatch,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    n: int,
    suppressed_ids: list[int] | tuple[int, ...] = (),
) -> SequenceBatch:
    """Expand B prompts to B*n sequences (prompt-major) and append the completions."""
    inputs = prompts.inputs
    rep = lambda t: t.repeat_interleave(n, dim=0)  # noqa: E731
    seq = {
        "input_ids": torch.cat([rep(inputs["input_ids"]), completion_ids], dim=1),
        "attention_mask": torch.cat([rep(inputs["attention_mask"]), completion_mask.to(inputs["attention_mask"].dtype)], dim=1),
    }
    for key in PER_TOKEN_KEYS:
        if key in inputs:
            seq[key] = torch.cat([rep(inputs[key]), torch.zeros_like(completion_ids, dtype=inputs[key].dtype)], dim=1)
    spans = _media_spans(prompts)
    media, rows = {}, {}
    for key, per_prompt in spans.items():
        t = inputs[key]
        parts, seq_rows, pos = [], [], 0
        for a, b in per_prompt:
            for _ in range(n):
                parts.append(t[a:b])
                seq_rows.append((pos, pos + b - a))
                pos += b - a
        media[key] = torch.cat(parts) if parts else t[:0]
        rows[key] = seq_rows
    return SequenceBatch(seq, media, rows, prompts.prompt_len, tuple(suppressed_ids))


def completion_logprobs(
    model, batch: SequenceBatch, temperature: float = 1.0, with_entropy: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs [N, T] of the completion tokens under `model` at `temperature` (the sampling distribution), and
    optionally the token entropy [N, T]. Only the last T+1 positions go through the LM head."""
    ids = batch.inputs["input_ids"]
    t = ids.shape[1] - batch.prompt_len
    out = model(**batch.model_inputs(), use_cache=False, logits_to_keep=t + 1)
    logits = out.logits[:, -(t + 1) : -1, :].float()
    if temperature > 0 and temperature != 1.0:
        logits = logits / temperature
    if batch.suppressed_ids:
        logits[..., list(batch.suppressed_ids)] = float("-inf")
    logp_all = torch.log_softmax(logits, dim=-1)
    targets = ids[:, batch.prompt_len :]
    logp = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    entropy = None
    if with_entropy:
        p = logp_all.exp()
        entropy = -(p * logp_all.masked_fill(p == 0, 0.0)).sum(-1)
    return logp, entropy
