"""Image helpers shared by the tools: fitting an image into the processor's pixel budget, and turning a box the
model wrote (in its family's convention) into integer pixel bounds of one image.

PIL only (no torchvision).
"""

from __future__ import annotations

import math
from typing import Sequence


from mmrft.data.media import fit_pixels  # noqa: F401  (re-exported: the tools fit returned images with it)
from mmrft.rewards.grounding import BOX_FORMATS, to_pixels
from mmrft.tools.base import ToolContext, ToolError

__all__ = ["MIN_CROP", "box_to_pixel_bounds", "fit_pixels"]

#: Smallest crop side in pixels. A Qwen-VL vision token covers 28 x 28 pixels (14-pixel patches merged 2 x 2),
#: and its processor refuses images smaller than that; DeepEyes rejects smaller boxes for the same reason. A
#: smaller box is enlarged around its centre instead of refused: the model pointed at something, and a slightly
#: larger view of it is more useful to it than an error.
MIN_CROP = 28


def box_to_pixel_bounds(box: Sequence[float], ctx: ToolContext, index: int) -> tuple[int, int, int, int]:
    """The box `[x1, y1, x2, y2]` the model wrote for image `index`, in `ctx.box_format`, as integer pixel bounds
    `(left, top, right, bottom)` of that image (right/bottom exclusive, as `Image.crop` takes them).

    Steps: convert to pixels of the image (`mmrft.rewards.grounding.to_pixels`; for "model_pixel" the image's size
    as the model sees it comes from `ctx.model_size(index)`); refuse a box with x2 <= x1 or y2 <= y1; clip to the
    image (refusing a box entirely outside it); round outwards to whole pixels; enlarge a side shorter than
    `MIN_CROP` to `MIN_CROP` around the box's centre, shifted to stay inside the image (an image smaller than
    `MIN_CROP` gives its whole side). Problems raise `ToolError(kind="bad_arguments")` with a message for the model.
    """
    if ctx.box_format not in BOX_FORMATS:
        raise ToolError(f"unknown box format {ctx.box_format!r}")
    image = ctx.image(index)
    w, h = image.size
    x1, y1, x2, y2 = to_pixels(box, ctx.box_format, (w, h), ctx.model_size(index))
    shown = _fmt_box(box)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise ToolError(f"the box {shown} is not finite", kind="bad_arguments")
    if x2 <= x1 or y2 <= y1:
        raise ToolError(f"the box {shown} has no area: it must be [x1, y1, x2, y2] with x2 > x1 and y2 > y1",
                        kind="bad_arguments")
    cx1, cy1, cx2, cy2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(w)), min(y2, float(h))
    if cx2 <= cx1 or cy2 <= cy1:
        raise ToolError(f"the box {shown} is entirely outside image {index} ({_describe_extent(ctx, index)})",
                        kind="bad_arguments")
    left, right = _widen(math.floor(cx1), math.ceil(cx2), w)
    top, bottom = _widen(math.floor(cy1), math.ceil(cy2), h)
    return left, top, right, bottom


def _widen(lo: int, hi: int, size: int) -> tuple[int, int]:
    """[lo, hi) grown to at least MIN_CROP (or the whole side) around its centre, kept within [0, size)."""
    if hi - lo >= MIN_CROP:
        return lo, hi
    if size <= MIN_CROP:
        return 0, size
    centre = (lo + hi) / 2
    lo = int(round(centre - MIN_CROP / 2))
    lo = min(max(lo, 0), size - MIN_CROP)
    return lo, lo + MIN_CROP


def _fmt_box(box: Sequence[float]) -> str:
    return "[" + ", ".join(_fmt_number(v) for v in box) + "]"


def _fmt_number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{float(v):g}"


def _describe_extent(ctx: ToolContext, index: int) -> str:
    """How the model should address image `index`, in its own box convention."""
    w, h = ctx.image(index).size
    fmt = ctx.box_format
    if fmt == "norm1":
        return "coordinates run from 0 to 1"
    if fmt == "norm1000":
        return "coordinates run from 0 to 1000"
    if fmt == "model_pixel":
        mw, mh = ctx.model_size(index)
        return f"it is {mw}x{mh} pixels"
    return f"it is {w}x{h} pixels"
