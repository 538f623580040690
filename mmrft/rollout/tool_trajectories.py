"""What a tool sees of a sample for a given model, and supervised tool-use trajectories written from a sample's
metadata.

`tool_context` is the one place that builds a trajectory's `mmrft.tools.ToolContext`: the sample's original
(full-resolution) images, the model family's box convention, the size of each image as the model sees it (for
Qwen2.5-VL's pixel boxes) and the processor's pixel budget that returned images are fitted into. The multi-turn
rollout (`mmrft.rollout.multiturn`) and the writer below both use it, so a box written for SFT means the same region
as a box the policy writes during RL.

`write_zoom_trajectories` turns rows whose `metadata["region"]` names the region to look at (the `zoom` synthetic
task writes it) into tool-use SFT rows: look -> `zoom_in(region)` -> read the returned image -> answer. The tool turn
is what `mmrft.tools.ToolEnvironment` answers at RL time, the crop is the real `zoom_in` output, saved as a PNG.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from mmrft import atomic
from mmrft.data.media import fitted_size, load_image
from mmrft.data.sources import load_samples
from mmrft.models.grounding import box_to_format, model_image_size
from mmrft.tools import ToolContext, ToolEnvironment

__all__ = ["tool_context", "write_zoom_trajectories", "zoom_call_text"]


def tool_context(processor, box_format: Optional[str], images: list, sample: Optional[dict] = None,
                 first_view_max_pixels: Optional[int] = None) -> ToolContext:
    """The `ToolContext` of a trajectory over `images` (PIL, original resolution) for a model with `processor` whose
    family writes boxes in `box_format` (None: pixels); `first_view_max_pixels`: the prompt's images were shown
    downsized to this many pixels (`data.max_pixels`), so the model's own pixel boxes refer to that size."""
    limits = getattr(getattr(processor, "image_processor", None), "size", None) or {}
    shown = [fitted_size(*im.size, first_view_max_pixels) for im in images]
    return ToolContext(images=list(images), returned=[], box_format=box_format or "pixel",
                       model_sizes=[model_image_size(processor, *wh) for wh in shown],
                       max_pixels=limits.get("longest_edge"), min_pixels=limits.get("shortest_edge"), sample=sample)


def zoom_call_text(box: list, thought: str) -> str:
    """An assistant turn that thinks, then calls `zoom_in` on `box` (already in the model's convention)."""
    call = {"name": "zoom_in", "arguments": {"bbox_2d": [int(v) if float(v).is_integer() else v for v in box]}}
    return f"<think>{thought}</think><tool_call>{json.dumps(call)}</tool_call>"


def write_zoom_trajectories(data: str | os.PathLike, out: str | os.PathLike, processor,
                            box_format: Optional[str], first_view_max_pixels: Optional[int] = None) -> Path:
    """`out/data.jsonl` (and `out/crops/*.png`): each row of `data` with a `trajectory` that zooms in on its
    `metadata["region"]` (pixels of its first image), reads the crop and answers with its reasoning
    (`metadata["zoomed_rationale"]`, else `metadata["rationale"]`); the first turn thinks `metadata["rationale"]`.
    Boxes are written in `box_format` (the model family's: `Family.box_format`), for prompt images shown at
    `first_view_max_pixels` (`data.max_pixels`). Rows without a region are refused."""
    out = Path(out)
    (out / "crops").mkdir(parents=True, exist_ok=True)
    rows = []
    for s in load_samples(data):
        region = s.metadata.get("region")
        if not (isinstance(region, list) and len(region) == 4):
            raise ValueError(f"{data}: sample {s.id}: metadata.region must be a box [x1, y1, x2, y2] in pixels")
        image = load_image(s.images[0])
        view = s.reward_view()
        ctx = tool_context(processor, box_format, [image], view, first_view_max_pixels)
        box = box_to_format(region, ctx.box_format, image.size, ctx.model_sizes[0])
        first = zoom_call_text(box, s.metadata.get("rationale", "zoom in"))
        env = ToolEnvironment(["zoom_in"])
        env.reset(view, ctx)
        obs = env.step(first)
        errors = obs.info.get("errors") if obs.info else None
        if errors or len(obs.images) != 1:
            raise ValueError(f"{data}: sample {s.id}: zoom_in on {box} failed: {obs.text}")
        crop = f"crops/{s.id}.png"
        tmp = out / f"crops/.{s.id}.png.tmp"
        obs.images[0].save(tmp, format="PNG")
        os.replace(tmp, out / crop)
        thought = s.metadata.get("zoomed_rationale") or s.metadata.get("rationale", "")
        row = s.to_row(out)
        row["trajectory"] = [
            {"role": "assistant", "content": first},
            {"role": "tool", "content": obs.text, "images": [crop]},
            {"role": "assistant", "content": f"<think>{thought}</think><answer>{s.answer}</answer>"},
        ]
        rows.append(row)
    path = out / "data.jsonl"
    atomic.write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path
