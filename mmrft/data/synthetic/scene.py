"""Scenes of simple shapes: the geometry (sizes, grid cells, boxes, areas, non-overlapping placement) and the
PIL drawing shared by the synthetic tasks. Deterministic given the caller's RNG."""

from __future__ import annotations

import math
import random
from typing import Any, Callable, Iterable, Sequence

from PIL import Image, ImageDraw, ImageFont

#: Reference resolution: pixel sizes in the task specs are given at this size and
#: scaled linearly with ``image_size / BASE_IMAGE_SIZE``.
BASE_IMAGE_SIZE = 112

#: Named colours. Saturated and mutually far apart; shapes are drawn without
#: anti-aliasing, so every shape pixel has exactly this RGB value.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (235, 195, 0),
    "purple": (140, 40, 170),
    "orange": (245, 130, 20),
}

#: Shape kinds. ``size`` is the radius (circle) or half-side (square, triangle);
#: every kind exactly fills the box ``[cx-size, cy-size, cx+size, cy+size]``.
SHAPE_KINDS = ("circle", "square", "triangle")

BACKGROUND = (255, 255, 255)


# ------------------------------------------------------------------- geometry


def scale(px: float, image_size: int) -> int:
    """Scale a pixel length given at 112 px to ``image_size`` (at least 1)."""
    return max(1, int(round(px * image_size / BASE_IMAGE_SIZE)))


def plural(kind: str) -> str:
    return kind + "s"


GRID_ROWS = ("top", "middle", "bottom")
GRID_COLS = ("left", "centre", "right")


def grid_cell(center: Sequence[int], image_size: int) -> str:
    """Coarse location of a point on a 3x3 grid: "top left", "middle centre", "bottom right", ..."""
    col = min(int(center[0]) * 3 // image_size, 2)
    row = min(int(center[1]) * 3 // image_size, 2)
    return f"{GRID_ROWS[row]} {GRID_COLS[col]}"


def bbox_of(center: Sequence[int], size: int) -> list[int]:
    cx, cy = center
    return [int(cx - size), int(cy - size), int(cx + size), int(cy + size)]


def area_of(kind: str, size: float) -> float:
    """Geometric area of a shape of ``kind`` with radius / half-side ``size``."""
    if kind == "circle":
        return math.pi * size * size
    if kind == "square":
        return 4.0 * size * size
    if kind == "triangle":  # base 2s, height 2s
        return 2.0 * size * size
    raise ValueError(f"unknown shape kind {kind!r}")


def _bound_radius(kind: str, size: int) -> float:
    return float(size) if kind == "circle" else size * math.sqrt(2.0)


def _separated(a: dict, b: dict, margin: int) -> bool:
    """True when objects ``a`` and ``b`` do not touch and are ``margin`` px apart.

    Two sufficient conditions are accepted: bounding circles apart, or bounding
    boxes apart along one axis.
    """
    (ax, ay), (bx, by) = a["center"], b["center"]
    dist = math.hypot(ax - bx, ay - by)
    if dist > _bound_radius(a["kind"], a["size"]) + _bound_radius(b["kind"], b["size"]) + margin:
        return True
    gap = a["size"] + b["size"] + margin
    return abs(ax - bx) > gap or abs(ay - by) > gap


def make_object(kind: str, colour: str, center: Sequence[int], size: int, **extra: Any) -> dict:
    """Scene entry for one shape (JSON-serialisable)."""
    obj = {
        "kind": kind,
        "colour": colour,
        "rgb": list(COLOURS[colour]),
        "center": [int(center[0]), int(center[1])],
        "size": int(size),
        "bbox": bbox_of(center, size),
        "area": round(area_of(kind, size), 3),
    }
    if kind == "circle":
        obj["radius"] = int(size)
    obj.update(extra)
    return obj


def place_objects(
    rng: random.Random,
    specs: Sequence[dict],
    image_size: int,
    margin: int | None = None,
    *,
    accept: Callable[[list[dict]], bool] | None = None,
    tries_per_object: int = 100,
    restarts: int = 20,
    shrink_steps: int = 12,
) -> list[dict]:
    """Place shapes without overlap by bounded rejection sampling.

    ``specs`` are dicts with ``kind``, ``colour``, ``size`` (and optional extra
    keys copied into the scene object). Objects stay ``pad`` px inside the
    canvas and ``margin`` px apart. ``accept`` may veto a full placement (e.g.
    a required horizontal separation). If no placement is found, all sizes are
    shrunk by 10 % (minimum 2 px) and the search repeats; after
    ``shrink_steps`` shrinks a ``ValueError`` is raised. The loop is bounded.
    """
    if margin is None:
        margin = scale(3, image_size)
    pad = scale(2, image_size)
    sizes = [int(s["size"]) for s in specs]
    for _ in range(shrink_steps + 1):
        for _ in range(restarts):
            placed: list[dict] = []
            ok = True
            for spec, size in zip(specs, sizes):
                lo, hi = size + pad, image_size - 1 - size - pad
                if hi < lo:
                    ok = False
                    break
                for _ in range(tries_per_object):
                    center = (rng.randint(lo, hi), rng.randint(lo, hi))
                    extra = {k: v for k, v in spec.items() if k not in ("kind", "colour", "size")}
                    cand = make_object(spec["kind"], spec["colour"], center, size, **extra)
                    if all(_separated(cand, o, margin) for o in placed):
                        placed.append(cand)
                        break
                else:
                    ok = False
                    break
            if ok and (accept is None or accept(placed)):
                return placed
        sizes = [max(2, int(s * 0.9)) for s in sizes]
    raise ValueError(
        f"could not place {len(specs)} objects on a {image_size}px canvas; use a larger image_size"
    )


def draw_objects(img: Image.Image, objects: Iterable[dict]) -> Image.Image:
    """Draw scene objects (no anti-aliasing, so pixels carry the exact RGB)."""
    draw = ImageDraw.Draw(img)
    for obj in objects:
        x1, y1, x2, y2 = obj["bbox"]
        fill = tuple(obj["rgb"])
        if obj["kind"] == "circle":
            draw.ellipse([x1, y1, x2, y2], fill=fill)
        elif obj["kind"] == "square":
            draw.rectangle([x1, y1, x2, y2], fill=fill)
        elif obj["kind"] == "triangle":
            cx = obj["center"][0]
            draw.polygon([(x1, y2), (x2, y2), (cx, y1)], fill=fill)
        else:
            raise ValueError(f"unknown shape kind {obj['kind']!r}")
    return img


def blank_image(image_size: int) -> Image.Image:
    return Image.new("RGB", (image_size, image_size), BACKGROUND)


_FONT_CACHE: dict[int, Any] = {}


def load_font(size: int):
    """PIL's built-in font at ``size`` px (FreeType, Pillow >= 10.1).

    Falls back to the bitmap default font if FreeType is unavailable (then
    text is small; callers only need legibility, not an exact size).
    """
    if size not in _FONT_CACHE:
        try:
            _FONT_CACHE[size] = ImageFont.load_default(size=size)
        except (TypeError, OSError, ImportError):  # pragma: no cover - old Pillow / no FreeType
            _FONT_CACHE[size] = ImageFont.load_default()
    return _FONT_CACHE[size]
