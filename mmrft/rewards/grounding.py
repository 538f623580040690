"""``iou`` reward: bounding-box grounding.  Score in [0, 1].

The predicted box is parsed from the extracted answer
(:func:`~mmrft.rewards.extract.extract_answer`), falling back to the whole
completion when the answer holds no box.  Accepted forms, first match wins:

* a ``"bbox_2d"`` / ``"bbox"`` / ``"box"`` key followed by four numbers
  (``{"bbox_2d": [10, 20, 30, 40], "label": "cat"}``);
* four numbers in one bracket pair: ``[10, 20, 30, 40]``, ``(10,20,30,40)``;
* two points: ``(10, 20), (30, 40)``, ``(10,20) to (30,40)``,
  ``<|box_start|>(10,20),(30,40)<|box_end|>``;
* otherwise, text holding exactly four numbers (``x1=10 y1=20 x2=30 y2=40``).

If several boxes are present the first one counts.  Boxes are
``[x1, y1, x2, y2]``; coordinates are in the convention named by
``metadata["box_format"]`` and converted to pixels with
``metadata["image_size"] = [w, h]``:

* ``"pixel"`` (default) — already pixels;
* ``"norm1"`` — fractions 0–1 of width/height;
* ``"norm1000"`` — 0–1000 (Qwen2-VL style);
* ``"model_pixel"`` — pixels of the image as the model saw it after the processor's resize (Qwen2.5-VL style),
  given by ``metadata["model_image_size"] = [w', h']``.

The gold box (``sample["answer"]``: list/tuple of four numbers, or a string in
any of the forms above) is in pixels unless ``metadata["answer_box_format"]``
names another convention.  With a known image size the predicted box is
clipped to the image.  A predicted box with ``x2 <= x1`` or ``y2 <= y1`` (after
clipping) or a non-finite coordinate scores 0.0.  Score = IoU; if
``metadata["iou_threshold"]`` is set the score is 1.0 when IoU >= threshold
else 0.0.  A missing ``image_size`` for a normalised format, or an invalid gold
box, raises ``ValueError``.
"""

from __future__ import annotations

import math
import re
from typing import Optional, Sequence, Tuple

from mmrft.rewards.extract import extract_answer
from mmrft.rewards.registry import register_reward

__all__ = ["iou_reward", "box_iou", "model_image_size", "parse_box", "to_pixels"]

Box = Tuple[float, float, float, float]
BOX_FORMATS = ("pixel", "norm1", "norm1000", "model_pixel")

_N = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_SEP = r"\s*,\s*"
_KEY_RE = re.compile(
    rf"[\"']?(?:bbox_2d|bbox|box)[\"']?\s*[:=]\s*(?:[\[(]\s*)?({_N}){_SEP}({_N}){_SEP}({_N}){_SEP}({_N})",
    re.IGNORECASE,
)
_BRACKET4_RE = re.compile(rf"[\[(]\s*({_N}){_SEP}({_N}){_SEP}({_N}){_SEP}({_N})\s*[\])]")
_POINTS_RE = re.compile(
    rf"\(\s*({_N}){_SEP}({_N})\s*\)(?:,|to|and|-|<\|box_end\|>|<\|box_start\|>|\s)*\(\s*({_N}){_SEP}({_N})\s*\)"
)
_NUMBER_RE = re.compile(rf"(?<![\w.])(?:{_N})")


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two ``[x1, y1, x2, y2]`` boxes; 0.0 if either is degenerate or invalid."""
    try:
        ax1, ay1, ax2, ay2 = (float(v) for v in a)
        bx1, by1, bx2, by2 = (float(v) for v in b)
    except (TypeError, ValueError):
        return 0.0
    vals = (ax1, ay1, ax2, ay2, bx1, by1, bx2, by2)
    if not all(math.isfinite(v) for v in vals):
        return 0.0
    if ax2 <= ax1 or ay2 <= ay1 or bx2 <= bx1 or by2 <= by1:
        return 0.0
    iw = min(ax2, bx2) - max(ax1, bx1)
    ih = min(ay2, by2) - max(ay1, by1)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    if not (union > 0 and math.isfinite(union)):
        return 0.0
    return max(0.0, min(1.0, inter / union))


def parse_box(text: str) -> Optional[Box]:
    """The first box in ``text`` as four floats (in the text's own convention), or ``None``."""
    if not isinstance(text, str):
        return None
    for rx in (_KEY_RE, _BRACKET4_RE, _POINTS_RE):
        m = rx.search(text)
        if m:
            return tuple(float(g) for g in m.groups())  # type: ignore[return-value]
    nums = _NUMBER_RE.findall(text)
    if len(nums) == 4:
        return tuple(float(g) for g in nums)  # type: ignore[return-value]
    return None


def _image_size(md: dict, key: str = "image_size") -> Optional[Tuple[float, float]]:
    size = md.get(key)
    if size is None:
        return None
    try:
        w, h = (float(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"metadata[{key!r}] must be [width, height], got {size!r}") from None
    if not (w > 0 and h > 0 and math.isfinite(w) and math.isfinite(h)):
        raise ValueError(f"metadata[{key!r}] must be positive, got {size!r}")
    return w, h


def model_image_size(md: dict) -> Optional[Tuple[float, float]]:
    """metadata['model_image_size'] (the resized image a ``model_pixel`` box refers to), checked."""
    return _image_size(md, "model_image_size")


def to_pixels(box: Sequence[float], box_format: str, image_size: Optional[Tuple[float, float]],
              model_size: Optional[Tuple[float, float]] = None) -> Box:
    """Convert ``box`` from ``box_format`` to pixel coordinates (``model_size``: the resized image, for
    ``model_pixel``)."""
    if box_format not in BOX_FORMATS:
        raise ValueError(f"unknown box_format {box_format!r}; expected one of {BOX_FORMATS}")
    x1, y1, x2, y2 = (float(v) for v in box)
    if box_format == "pixel":
        return x1, y1, x2, y2
    if image_size is None:
        raise ValueError(f"box_format {box_format!r} needs metadata['image_size'] = [w, h]")
    w, h = image_size
    if box_format == "model_pixel":
        if model_size is None:
            raise ValueError("box_format 'model_pixel' needs metadata['model_image_size'] = [w, h]")
        sx, sy = w / model_size[0], h / model_size[1]
        return x1 * sx, y1 * sy, x2 * sx, y2 * sy
    scale = 1.0 if box_format == "norm1" else 1000.0
    return x1 / scale * w, y1 / scale * h, x2 / scale * w, y2 / scale * h


def _gold_box(gold, md: dict, size) -> Box:
    fmt = md.get("answer_box_format", "pixel")
    if isinstance(gold, str):
        parsed = parse_box(gold)
        if parsed is None:
            raise ValueError(f"cannot parse a gold box from {gold!r}")
        gold = parsed
    if not isinstance(gold, (list, tuple)) or len(gold) != 4:
        raise ValueError(f"gold box must be [x1, y1, x2, y2], got {gold!r}")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in gold):
        raise ValueError(f"gold box must hold four numbers, got {gold!r}")
    box = to_pixels(gold, fmt, size, model_image_size(md))
    if not all(math.isfinite(v) for v in box) or box[2] <= box[0] or box[3] <= box[1]:
        raise ValueError(f"gold box {gold!r} is degenerate (need x2 > x1 and y2 > y1)")
    return box


def sample_metadata(sample: dict) -> dict:
    """The sample's metadata dict; a malformed *sample* (not model output) is a ValueError."""
    if not isinstance(sample, dict) or "answer" not in sample:
        raise ValueError("sample must be a dict with an 'answer' key")
    md = sample.get("metadata") or {}
    if not isinstance(md, dict):
        raise ValueError("sample['metadata'] must be a dict")
    return md


def box_convention(md: dict) -> tuple[str, tuple | None]:
    """(box_format, image_size) from metadata, checked: non-pixel formats need the image size."""
    fmt = md.get("box_format", "pixel")
    if fmt not in BOX_FORMATS:
        raise ValueError(f"unknown metadata['box_format'] {fmt!r}; expected one of {BOX_FORMATS}")
    size = _image_size(md)
    if fmt != "pixel" and size is None:
        raise ValueError(f"box_format {fmt!r} needs metadata['image_size'] = [w, h]")
    if fmt == "model_pixel" and model_image_size(md) is None:
        raise ValueError("box_format 'model_pixel' needs metadata['model_image_size'] = [w, h]")
    return fmt, size


def optional_threshold(md: dict) -> float | None:
    """metadata['iou_threshold'] if set (then scores become 0/1), else None."""
    threshold = md.get("iou_threshold")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))):
        raise ValueError(f"metadata['iou_threshold'] must be a number, got {threshold!r}")
    return threshold


@register_reward("iou")
def iou_reward(completion: str, sample: dict) -> float:
    """IoU of the predicted and gold boxes (or 0/1 against ``metadata['iou_threshold']``)."""
    md = sample_metadata(sample)
    fmt, size = box_convention(md)
    gold = _gold_box(sample["answer"], md, size)
    threshold = optional_threshold(md)
    try:
        if not isinstance(completion, str):
            return 0.0
        answer = extract_answer(completion)
        box = parse_box(answer) if answer is not None else None
        if box is None:
            box = parse_box(completion)
        if box is None:
            return 0.0
        x1, y1, x2, y2 = to_pixels(box, fmt, size, model_image_size(md))
        if size is not None:
            w, h = size
            x1, x2 = min(max(x1, 0.0), w), min(max(x2, 0.0), w)
            y1, y2 = min(max(y1, 0.0), h), min(max(y2, 0.0), h)
        iou = box_iou((x1, y1, x2, y2), gold)
    except Exception:
        return 0.0
    if threshold is not None:
        return 1.0 if iou >= threshold else 0.0
    return iou
