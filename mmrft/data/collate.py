"""Samples -> processor inputs for a batch of prompts (left padded, images decoded lazily here)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mmrft.data.media import load_image
from mmrft.data.prompts import build_messages, target_text
from mmrft.data.schema import Sample


@dataclass
class PromptBatch:
    """B prompts encoded by the processor. `inputs` holds `input_ids`, `attention_mask` and whatever per-token and
    media keys the processor returns (`mm_token_type_ids`, `pixel_values`, `image_grid_thw` for Qwen2-VL)."""

    samples: list[Sample]
    inputs: dict[str, torch.Tensor]
    images_per_prompt: list[int]

    @property
    def prompt_len(self) -> int:
        return int(self.inputs["input_ids"].shape[1])

    def to(self, device: torch.device | str) -> "PromptBatch":
        self.inputs = {k: v.to(device) for k, v in self.inputs.items()}
        return self

    def media_spans(self) -> dict[str, list[tuple[int, int]]]:
        """Per-prompt (start, end) rows of each media tensor. Qwen-style processors flatten all images' patches
        into one `pixel_values` tensor and give one `image_grid_thw` row per image (image j has prod(thw_j)
        patches); LLaVA-style ones give one `pixel_values` row per prompt."""
        spans: dict[str, list[tuple[int, int]]] = {}
        if "image_grid_thw" in self.inputs:
            per_image = self.inputs["image_grid_thw"].prod(dim=1).tolist()
            img_spans, patch_spans, img, patch = [], [], 0, 0
            for count in self.images_per_prompt:
                n_patch = int(sum(per_image[img : img + count]))
                img_spans.append((img, img + count))
                patch_spans.append((patch, patch + n_patch))
                img += count
                patch += n_patch
            spans["image_grid_thw"] = img_spans
            spans["pixel_values"] = patch_spans
        elif "pixel_values" in self.inputs:
            spans["pixel_values"] = [(i, i + 1) for i in range(len(self.samples))]
        return spans

    def select(self, idx: list[int], repeat: int = 1) -> "PromptBatch":
        """Prompts `idx` (each repeated `repeat` times in a row), with their media rows."""
        rows = [i for i in idx for _ in range(repeat)]
        spans = self.media_spans()
        inputs = {k: v[rows] for k, v in self.inputs.items() if k not in spans}
        for key, per_prompt in spans.items():
            t = self.inputs[key]
            parts = [t[per_prompt[i][0] : per_prompt[i][1]] for i in rows]
            inputs[key] = torch.cat(parts) if parts else t[:0]
        return PromptBatch([self.samples[i] for i in rows], inputs, [self.images_per_prompt[i] for i in rows])


def concat_prompt_batches(batches: list[PromptBatch], pad_id: int) -> PromptBatch:
    """One batch from several: per-token tensors left-padded to the longest prompt (pad id / 0), media rows
    concatenated in order. Extra left padding changes nothing: positions count attended tokens only."""
    if len(batches) == 1:
        return batches[0]
    length = max(b.prompt_len for b in batches)
    inputs: dict[str, torch.Tensor] = {}
    for key in batches[0].inputs:
        parts = []
        for b in batches:
            t = b.inputs[key]
            if t.dim() == 2 and t.shape[1] == b.prompt_len:  # per-token
                fill = pad_id if key == "input_ids" else 0
                t = torch.cat([t.new_full((t.shape[0], length - b.prompt_len), fill), t], dim=1)
            parts.append(t)
        inputs[key] = torch.cat(parts)
    return PromptBatch([s for b in batches for s in b.samples], inputs,
                       [c for b in batches for c in b.images_per_prompt])


def encode_prompts(processor, samples: list[Sample], fmt: str = "r1", system: str | None = None) -> PromptBatch:
    texts, images, counts = [], [], []
    for s in samples:
        msgs = build_messages(s.prompt, len(s.images), fmt=fmt, system=system)
        texts.append(processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False))
        imgs = [load_image(ref) for ref in s.images]
        images.extend(imgs)
        counts.append(len(imgs))
    kwargs = {"images": images} if images else {}
    inputs = processor(text=texts, padding=True, return_tensors="pt", **kwargs)
    return PromptBatch(samples=samples, inputs=dict(inputs), images_per_prompt=counts)


def encode_targets(processor, samples: list[Sample], fmt: str = "r1") -> list[list[int]]:
    """Token ids of each sample's supervised target, ending with the tokenizer's end-of-turn token."""
    tok = processor.tokenizer
    out = []
    for s in samples:
        text = target_text(s.answer, fmt=fmt, rationale=str(s.metadata.get("rationale", "")))
        out.append(tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id])
    return out
