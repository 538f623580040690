"""Grounding boxes in each family's own coordinate convention.

Data give boxes in pixels of the original image. Real checkpoints were trained to answer in their family's
convention (`Family.box_format`): Qwen2-VL and Qwen3-VL on a 0-1000 grid of the image, Qwen2.5-VL in pixels of the
image after the processor's resize. Training a checkpoint on pixel answers it was never taught costs reward for
nothing, so `adapt_boxes` rewrites a grounding sample's gold box and its reward metadata into the family's
convention; the `iou` reward converts the model's answer back to pixels with the same metadata.
"""

from __future__ import annotations

import dataclasses

from mmrft.data.media import load_image
from mmrft.data.schema import Sample
from mmrft.models.families import Family

BOX_REWARDS = ("iou",)


def model_image_size(processor, width: int, height: int) -> tuple[int, int]:
    """(w, h) of the image as the model sees it: Qwen-VL processors resize to multiples of patch × merge within
    their pixel budget (`smart_resize`); other processors are treated as keeping the size."""
    ip = getattr(processor, "image_processor", None)
    patch, merge = getattr(ip, "patch_size", None), getattr(ip, "merge_size", None)
    size = getattr(ip, "size", None) or {}
    lo, hi = size.get("shortest_edge"), size.get("longest_edge")
    if not (patch and merge and lo and hi):
        return width, height
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    h, w = smart_resize(height, width, factor=int(patch) * int(merge), min_pixels=int(lo), max_pixels=int(hi))
    return int(w), int(h)


def box_to_format(box: list[float], box_format: str, image_wh: tuple[int, int],
                  model_wh: tuple[int, int] | None = None) -> list[float]:
    """A pixel box [x1, y1, x2, y2] of an image of size `image_wh` in `box_format` (integers except norm1)."""
    w, h = image_wh
    if box_format == "pixel":
        return [round(v) for v in box]
    if box_format == "norm1000":
        return [round(box[0] / w * 1000), round(box[1] / h * 1000), round(box[2] / w * 1000), round(box[3] / h * 1000)]
    if box_format == "norm1":
        return [round(box[0] / w, 3), round(box[1] / h, 3), round(box[2] / w, 3), round(box[3] / h, 3)]
    if box_format == "model_pixel":
        if model_wh is None:
            raise ValueError("box_format 'model_pixel' needs the resized image size")
        mw, mh = model_wh
        return [round(box[0] * mw / w), round(box[1] * mh / h), round(box[2] * mw / w), round(box[3] * mh / h)]
    raise ValueError(f"unknown box_format {box_format!r}")


def _is_pixel_box_sample(s: Sample) -> bool:
    reward_names = [s.reward] if isinstance(s.reward, str) else list(s.reward or {})
    return (any(r in BOX_REWARDS for r in reward_names) and isinstance(s.answer, list) and len(s.answer) == 4
            and s.metadata.get("box_format", "pixel") == "pixel" and "answer_box_format" not in s.metadata
            and len(s.images) == 1)


def adapt_boxes(samples: list[Sample], family: Family, processor) -> list[Sample]:
    """Samples whose gold is a pixel box (reward `iou`, one image) rewritten into `family.box_format`; others, and
    every sample of a family without a convention, unchanged. Sets `box_format`, `answer_box_format`, `image_size`
    (read from the image when missing) and, for `model_pixel`, `model_image_size`."""
    fmt = family.box_format
    if fmt is None or fmt == "pixel":
        return samples
    out = []
    for s in samples:
        if not _is_pixel_box_sample(s):
            out.append(s)
            continue
        size = s.metadata.get("image_size")
        if size is None:
            size = list(load_image(s.images[0]).size)
        w, h = int(size[0]), int(size[1])
        model_wh = model_image_size(processor, w, h)
        md = dict(s.metadata, box_format=fmt, answer_box_format=fmt, image_size=[w, h])
        if fmt == "model_pixel":
            md["model_image_size"] = list(model_wh)
        answer = box_to_format([float(v) for v in s.answer], fmt, (w, h), model_wh)
        out.append(dataclasses.replace(s, answer=answer, metadata=md))
    return out
