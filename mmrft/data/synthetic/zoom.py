"""``zoom``: count small shapes inside a framed card of a large image, a detail too small to read at the resolution
the model is given for the whole image, and easy to read once the card is cropped (the `zoom_in` tool).

The canvas is ``image_size`` pixels (default 448) on a pale colour gradient (`gradient_background`); a grey card in
a black frame, of side ``image_size / 4`` (112 px at 448), holds 1-5 small circles (radius ``image_size / 90``, 5 px
at 448). Shown whole at 112 px (the tiny models' input, 4x4 merged image tokens for Qwen-VL) the card is one token's
square, 28 px, and each circle about 2.5 px across; zoomed in on the card (returned at 112 px), a circle is 10 px.
At difficulties 0 and 1 the card sits exactly on one cell of the 4x4 grid the tiny models' image tokens make.

Difficulty levels:

0. the card in one of the 4 corner cells; circles of the asked colour only inside it.
1. the card in one of the 16 cells of the 4x4 grid; 2-6 circles of the asked colour outside the card (not to be
   counted: the whole image does not tell which dots are inside).
2. the card anywhere; 1-7 circles inside, 0-2 circles of other colours inside, 2-6 of the asked colour outside, and
   a grey decoy frame elsewhere holding circles of the asked colour.

Answer: the count inside the black frame, e.g. ``"3"``. Reward: ``count``. ``metadata["region"]`` is the card's box
in canvas pixels ``[x1, y1, x2, y2]`` (what a useful zoom looks at), ``metadata["location"]`` its place ("the top
left corner", "row 2, column 3", "the middle centre"), ``metadata["zoomed_rationale"]`` the reasoning once zoomed in
(where each counted circle sits in the card, never the count itself).

Why the geometry: measured with the tiny Qwen2-VL, neither a card straddling four image tokens (side / 8, quadrant
centres) nor a token-aligned one taught SFT where the card is (held-out location at chance, docs/tools.md); a
family whose vision tower has absolute position embeddings (Gemma 3's SigLIP) learns it.
"""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageDraw

from .base import SyntheticTask, register_task
from .scene import COLOURS, draw_objects, grid_cell, make_object, place_objects

ZOOM_IMAGE_SIZE = 448
BASE_COLOURS = ("red", "green", "blue", "yellow")
FRAME_RGB = (0, 0, 0)
DECOY_RGB = (150, 150, 150)
CARD_RGB = (225, 225, 225)  # the frames' fill: a grey card, visible as a blob at the 112-px first view
DECOY_CARD_RGB = CARD_RGB
QUADRANTS = ("top left", "top right", "bottom left", "bottom right")
CORNERS = tuple(f"the {q} corner" for q in QUADRANTS)


def frame_side(image_size: int) -> int:
    return max(16, image_size // 4)


def circle_radius(image_size: int) -> int:
    return max(2, round(image_size / 90))


def named_circle_radius(image_size: int) -> int:
    """``zoom_named``'s circles: twice ``zoom``'s (10 px at 448), so that the zoomed view (returned at 112 px) draws
    them as the ``count`` task does (radius 10 at 112), the size a counting base model has learnt to read. With
    ``zoom``'s 10-px-wide circles in the crop, SFT with tools read the count less well (docs/tools.md)."""
    return max(2, round(image_size / 45))


def frame_width(image_size: int) -> int:
    return max(1, round(image_size * 5 / 448))


def gradient_background(image_size: int) -> Image.Image:
    """A pale background whose colour says where a pixel is: red falls from left to right, green from top to
    bottom (255 -> 185), blue stays 240. Real photographs have content everywhere; a blank canvas gives a model
    whose encoders know only relative positions (rotary embeddings, as Qwen-VL's) nothing to tell one place from
    another, so a tiny model cannot learn where the frame is."""
    ramp = np.round(255 - 70 * (np.arange(image_size) + 0.5) / image_size).astype(np.uint8)
    rgb = np.empty((image_size, image_size, 3), dtype=np.uint8)
    rgb[..., 0] = ramp[None, :]
    rgb[..., 1] = ramp[:, None]
    rgb[..., 2] = 240
    return Image.fromarray(rgb, "RGB")


def _region_at(cx: float, cy: float, side: int, image_size: int) -> list[int]:
    x1 = int(round(cx - side / 2))
    y1 = int(round(cy - side / 2))
    x1 = min(max(0, x1), image_size - side)
    y1 = min(max(0, y1), image_size - side)
    return [x1, y1, x1 + side, y1 + side]


def _inside(center, box, margin: int = 0) -> bool:
    x, y = center
    return box[0] - margin <= x <= box[2] + margin and box[1] - margin <= y <= box[3] + margin


def _place_in(rng: random.Random, specs: list[dict], box: list[int], width: int) -> list[dict]:
    """Shapes inside `box`, clear of its frame line: placed on a canvas of the inner side, then shifted."""
    gap = width + 2
    inner = box[2] - box[0] - 2 * gap
    placed = place_objects(rng, specs, inner, margin=3)
    out = []
    for o in placed:
        cx, cy = o["center"][0] + box[0] + gap, o["center"][1] + box[1] + gap
        extra = {k: v for k, v in o.items() if k not in ("kind", "colour", "rgb", "center", "size", "bbox", "area",
                                                             "radius")}
        out.append(make_object(o["kind"], o["colour"], (cx, cy), o["size"], **extra))
    return out


def _place_outside(rng: random.Random, specs: list[dict], image_size: int, boxes: list[list[int]],
                   placed: list[dict]) -> list[dict]:
    """Shapes anywhere on the canvas but clear of every box in `boxes` (and apart from each other)."""
    if not specs:
        return []
    r = max(int(s["size"]) for s in specs)

    def clear(objs: list[dict]) -> bool:
        return all(not _inside(o["center"], b, margin=r + 3) for o in objs for b in boxes)

    return place_objects(rng, specs, image_size, accept=clear)


@register_task("zoom")
class ZoomTask(SyntheticTask):
    name = "zoom"
    reward = "count"
    difficulties = range(3)
    default_image_size = ZOOM_IMAGE_SIZE

    def sample_scene(self, rng: random.Random, difficulty: int, image_size: int) -> dict:
        s = image_size
        side, radius, width = frame_side(s), circle_radius(s), frame_width(s)
        colour = rng.choice(BASE_COLOURS)
        if difficulty == 0:
            k = rng.randrange(4)
            cx, cy = (s / 8 if k % 2 == 0 else 7 * s / 8), (s / 8 if k < 2 else 7 * s / 8)
        elif difficulty == 1:
            k = rng.randrange(16)
            cx, cy = (2 * (k % 4) + 1) * s / 8, (2 * (k // 4) + 1) * s / 8
        else:
            cx, cy = rng.uniform(side / 2, s - side / 2), rng.uniform(side / 2, s - side / 2)
        region = _region_at(cx, cy, side, s)
        n = rng.randint(1, 7 if difficulty == 2 else 5)
        inside = [{"kind": "circle", "colour": colour, "size": radius} for _ in range(n)]
        if difficulty == 2:
            others = [c for c in BASE_COLOURS if c != colour]
            inside += [{"kind": "circle", "colour": rng.choice(others), "size": radius}
                       for _ in range(rng.randint(0, 2))]
            rng.shuffle(inside)
        objects = _place_in(rng, inside, region, width)
        decoy = None
        boxes = [region]
        if difficulty == 2:
            for _ in range(100):  # a decoy frame that does not touch the real one
                d = _region_at(rng.uniform(side / 2, s - side / 2), rng.uniform(side / 2, s - side / 2), side, s)
                if d[0] > region[2] + 4 or d[2] < region[0] - 4 or d[1] > region[3] + 4 or d[3] < region[1] - 4:
                    decoy = d
                    break
            if decoy is not None:
                boxes.append(decoy)
                decoy_specs = [{"kind": "circle", "colour": colour, "size": radius} for _ in range(rng.randint(1, 5))]
                objects += _place_in(rng, decoy_specs, decoy, width)
        if difficulty >= 1:
            outside = [{"kind": "circle", "colour": colour, "size": radius} for _ in range(rng.randint(2, 6))]
            objects += _place_outside(rng, outside, s, boxes, objects)
        return {"question": {"colour": colour, "kind": "circle"}, "objects": objects, "region": region,
                "decoy": decoy, "frame_width": width, "image_size": s,
                "layout": ("quadrants", "grid", "free")[difficulty]}

    def render(self, scene: dict, image_size: int) -> Image.Image:
        img = gradient_background(image_size)
        draw = ImageDraw.Draw(img)
        w = scene["frame_width"]
        for box, rgb, fill in ((scene["region"], FRAME_RGB, CARD_RGB), (scene.get("decoy"), DECOY_RGB, DECOY_CARD_RGB)):
            if box:
                draw.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], fill=fill, outline=rgb, width=w)
        return draw_objects(img, scene["objects"])

    def prompt(self, scene: dict) -> str:
        q = scene["question"]
        return f"How many {q['colour']} {q['kind']}s are inside the black frame?"

    def location(self, scene: dict) -> str:
        """Where the card is: a corner at difficulty 0, a cell of the 4x4 grid at 1, else of a coarse 3x3 grid."""
        s, box = scene["image_size"], scene["region"]
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        if scene["layout"] == "quadrants":
            return CORNERS[(cx > s / 2) + 2 * (cy > s / 2)]
        if scene["layout"] == "grid":
            return f"row {min(int(cy * 4 // s), 3) + 1}, column {min(int(cx * 4 // s), 3) + 1}"
        return f"the {grid_cell((cx, cy), s)}"

    def rationale(self, scene: dict) -> str:
        return f"the black frame is at {self.location(scene)}"

    def counted(self, scene: dict) -> list[dict]:
        q, box = scene["question"], scene["region"]
        return [o for o in scene["objects"]
                if o["colour"] == q["colour"] and o["kind"] == q["kind"] and _inside(o["center"], box)]

    def zoomed_rationale(self, scene: dict) -> str:
        """Where each counted circle is inside the frame (3x3 grid of the frame, reading order)."""
        q, box = scene["question"], scene["region"]
        side = box[2] - box[0]
        rel = sorted(((o["center"][0] - box[0], o["center"][1] - box[1]) for o in self.counted(scene)),
                     key=lambda c: (c[1] * 3 // side, c[0]))
        return f"{q['colour']} {q['kind']}s: " + ", ".join(grid_cell(c, side) for c in rel)

    def solve(self, scene: dict) -> str:
        return str(len(self.counted(scene)))

    def extra_metadata(self, scene: dict, image_size: int) -> dict:
        return {"region": list(scene["region"]), "location": self.location(scene),
                "zoomed_rationale": self.zoomed_rationale(scene)}


__all__ = ["ZoomTask", "ZOOM_IMAGE_SIZE", "COLOURS"]


@register_task("zoom_named")
class ZoomNamedTask(ZoomTask):
    """``zoom_named``: the ``zoom`` card among three more framed cards alike, the question naming where the asked one
    is ("How many red circles are inside the frame at the top left corner?"). Every card holds 1-5 circles of the
    asked colour, so the whole image (where each circle is 5 px across, inside a card of one image token) does not
    give the answer, and a zoom on the named card does (a circle 20 px across, as in the ``count`` task); a zoom on
    another card reads a wrong count.

    Why a named place: the tiny models cannot learn from pixels where a card is (docs/tools.md), but they can learn
    to turn a place named in words into a box. What is left to learn is what the papers' claim is about: that
    looking closer pays, at which box, and reading the zoomed view (V* Bench's questions likewise name the object to
    find).

    0. the four cards in the 4 corner cells of the 4x4 grid;
    1. four of the 16 cells, named by row and column.
    """

    name = "zoom_named"
    difficulties = range(2)

    def sample_scene(self, rng: random.Random, difficulty: int, image_size: int) -> dict:
        s = image_size
        side, radius, width = frame_side(s), named_circle_radius(s), frame_width(s)
        colour = rng.choice(BASE_COLOURS)
        cells = [(0, 0), (3, 0), (0, 3), (3, 3)] if difficulty == 0 else [(c, r) for r in range(4) for c in range(4)]
        boxes = [_region_at((2 * c + 1) * s / 8, (2 * r + 1) * s / 8, side, s) for c, r in rng.sample(cells, 4)]
        objects = []
        for box in boxes:  # the asked card first
            specs = [{"kind": "circle", "colour": colour, "size": radius} for _ in range(rng.randint(1, 5))]
            objects += _place_in(rng, specs, box, width)
        return {"question": {"colour": colour, "kind": "circle"}, "objects": objects, "region": boxes[0],
                "others": boxes[1:], "decoy": None, "frame_width": width, "image_size": s,
                "layout": ("quadrants", "grid")[difficulty]}

    def render(self, scene: dict, image_size: int) -> Image.Image:
        img = gradient_background(image_size)
        draw = ImageDraw.Draw(img)
        for box in [scene["region"], *scene["others"]]:
            draw.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], fill=CARD_RGB, outline=FRAME_RGB,
                           width=scene["frame_width"])
        return draw_objects(img, scene["objects"])

    def prompt(self, scene: dict) -> str:
        q, where = scene["question"], self.location(scene)
        return f"How many {q['colour']} {q['kind']}s are inside the frame at {where}?"

    def rationale(self, scene: dict) -> str:
        return f"the frame at {self.location(scene)}"
