"""`drawers`: a synthetic multi-step tool environment whose answer is hidden until the model acts.

The sample's image shows a cabinet of N (3-5) closed drawers labelled A, B, C, …; the question asks for something
only visible inside two of them ("How many red balls are in drawers A and C together?"). The model must call
`open_drawer(label)` to get a picture of a drawer's contents (coloured balls); each opening is one step and returns
one image, and the answer needs two openings. The environment keeps which drawers are open (opening one again
returns no new image, only the index it already has), and grades the final answer with the `count` reward.

Items are procedural: `generate_drawers(n, seed)` gives sample dicts (images as PIL, or written under a directory
with a `data.jsonl`, the layout of `mmrft synth`). The drawers' contents are in `metadata["drawers"]`; both the
tool and the generator render a drawer from that record with `render_drawer`, and the gold answer is counted from
the *rendered* pictures with `count_balls` (and checked against the record), so the answer is what the model can
see.
"""

from __future__ import annotations

import json
import os
import random
from collections import deque
from pathlib import Path
from typing import Optional, Union

import numpy as np
from PIL import Image, ImageDraw

from mmrft import atomic
from mmrft.data.synthetic import item_rng
from mmrft.data.synthetic.scene import COLOURS, blank_image, draw_objects, load_font, place_objects
from mmrft.rewards.numeric import count_reward
from mmrft.tools.base import ToolCall, ToolCallError, ToolContext, ToolError, ToolOutput
from mmrft.tools.environment import Observation, ToolEnvironment, register_environment
from mmrft.tools.registry import register_tool, tool_schemas

__all__ = ["BALL_COLOURS", "DrawersEnvironment", "count_balls", "generate_drawers", "open_drawer",
           "render_cabinet", "render_drawer"]

TASK = "drawers"
LABELS = "ABCDE"
BALL_COLOURS = ("red", "blue", "green", "yellow")
CABINET_SIZE = 224  # the question's image: the closed cabinet, square
INSIDE_SIZE = 112  # the square floor of an open drawer, where the balls lie
_FRAME = 8  # wood border of an open drawer's picture
_HEADER = 20  # strip above the floor with the drawer's label
_WOOD = (150, 100, 55)
_WOOD_DARK = (95, 60, 30)
_INK = (0, 0, 0)
_BALL_RADIUS = 8
_MAX_PER_COLOUR = 3


# ----------------------------------------------------------------------------------------------- rendering


def render_cabinet(labels: list[str], size: int = CABINET_SIZE) -> Image.Image:
    """The closed cabinet: one wooden drawer front per label, top to bottom, each with its label and a handle."""
    img = blank_image(size)
    draw = ImageDraw.Draw(img)
    margin, gap = size // 14, max(2, size // 56)
    height = (size - 2 * margin - gap * (len(labels) - 1)) // len(labels)
    font = load_font(max(10, height // 2))
    for i, label in enumerate(labels):
        top = margin + i * (height + gap)
        box = (margin, top, size - margin, top + height)
        draw.rectangle(box, fill=_WOOD, outline=_WOOD_DARK, width=2)
        cy = top + height // 2
        draw.text((margin + height // 2, cy), label, fill=_INK, font=font, anchor="mm")
        hw = size // 8
        draw.rectangle((size // 2 - hw // 2, cy - 2, size // 2 + hw // 2, cy + 2), fill=_WOOD_DARK)
    return img


def render_drawer(label: str, balls: list[dict]) -> Image.Image:
    """An open drawer seen from above: its label in a header, a wooden frame, and the balls (scene objects from
    `place_objects`, drawn without anti-aliasing so each ball's pixels carry its colour's exact RGB)."""
    floor = draw_objects(blank_image(INSIDE_SIZE), balls)
    w, h = INSIDE_SIZE + 2 * _FRAME, INSIDE_SIZE + _HEADER + 2 * _FRAME
    img = Image.new("RGB", (w, h), _WOOD)
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, w - 1, _HEADER), fill=(255, 255, 255))
    draw.text((w // 2, _HEADER // 2), f"Drawer {label}", fill=_INK, font=load_font(14), anchor="mm")
    img.paste(floor, (_FRAME, _HEADER + _FRAME))
    return img


def count_balls(image: Image.Image, colour: str) -> int:
    """How many separate blobs of exactly `colour`'s RGB the image holds (4-connected): the number of balls of
    that colour in a drawer picture, read from its pixels."""
    rgb = np.asarray(image.convert("RGB"))
    mask = np.all(rgb == np.array(COLOURS[colour], dtype=rgb.dtype), axis=-1)
    seen = np.zeros_like(mask)
    h, w = mask.shape
    blobs = 0
    for y, x in zip(*np.nonzero(mask)):
        if seen[y, x]:
            continue
        blobs += 1
        seen[y, x] = True
        queue = deque([(y, x)])
        while queue:
            cy, cx = queue.popleft()
            for ny, nx in ((cy - 1, cx), (cy + 1, cx), (cy, cx - 1), (cy, cx + 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    queue.append((ny, nx))
    return blobs


# ----------------------------------------------------------------------------------------------- generation


def _sample_contents(rng: random.Random) -> list[dict]:
    specs = [{"kind": "circle", "colour": colour, "size": _BALL_RADIUS}
             for colour in BALL_COLOURS for _ in range(rng.randint(0, _MAX_PER_COLOUR))]
    rng.shuffle(specs)
    return place_objects(rng, specs, INSIDE_SIZE) if specs else []


def drawers_item(index: int, seed: int = 0) -> dict:
    """Item `index` of `seed` as a sample dict with its cabinet image as PIL (`images: [image]`); deterministic."""
    rng = item_rng(seed, TASK, index)
    labels = list(LABELS[: rng.randint(3, len(LABELS))])
    drawers = {label: _sample_contents(rng) for label in labels}
    asked = sorted(rng.sample(labels, 2))
    colour = rng.choice(BALL_COLOURS)
    seen = [count_balls(render_drawer(label, drawers[label]), colour) for label in asked]
    recorded = [sum(b["colour"] == colour for b in drawers[label]) for label in asked]
    if seen != recorded:  # a drawing bug, never the model's doing
        raise AssertionError(f"drawers item {index}: rendered {seen} {colour} balls, recorded {recorded}")
    listed = ", ".join(labels[:-1]) + f" and {labels[-1]}"
    prompt = (f"The cabinet in the image has {len(labels)} closed drawers labelled {listed}. "
              f"How many {colour} balls are in drawers {asked[0]} and {asked[1]} together? "
              "You cannot see inside a drawer until you open it with the open_drawer tool.")
    return {
        "id": f"{TASK}-s{seed}-{index:06d}",
        "prompt": prompt,
        "images": [render_cabinet(labels)],
        "answer": str(sum(seen)),
        "task": TASK,
        "reward": "count",
        "metadata": {
            "environment": TASK,
            "labels": labels,
            "drawers": drawers,
            "asked": asked,
            "colour": colour,
            "counts": dict(zip(asked, seen)),
            "image_size": [CABINET_SIZE, CABINET_SIZE],
            "rationale": f"open drawers {asked[0]} and {asked[1]} and add their {colour} balls",
        },
    }


def generate_drawers(n: int, seed: int = 0, out_dir: Optional[Union[str, os.PathLike]] = None) -> list[dict]:
    """`n` drawers items of `seed`. Without `out_dir` each sample's `images` holds the PIL cabinet image; with it,
    the images are written to `out_dir/images/<id>.png`, the rows (image paths relative to `out_dir`) to
    `out_dir/data.jsonl` (atomically), and the rows are returned."""
    items = [drawers_item(i, seed) for i in range(n)]
    if out_dir is None:
        return items
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for item in items:
        rel = f"images/{item['id']}.png"
        item["images"][0].save(out / rel, format="PNG")
        rows.append(dict(item, images=[rel]))
    atomic.write_text(out / "data.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    return rows


# ----------------------------------------------------------------------------------------------- the tool


def _label(label: str) -> str:
    """"a", " A ", "drawer A" -> "A"."""
    key = label.strip()
    if key.lower().startswith("drawer"):
        key = key[len("drawer"):].strip()
    return key.upper()


def _drawers(ctx: ToolContext) -> dict:
    md = (ctx.sample or {}).get("metadata") or {}
    drawers = md.get("drawers") if isinstance(md, dict) else None
    if not isinstance(drawers, dict):
        raise ToolError("there is no cabinet in this question")
    return drawers


@register_tool(
    "open_drawer",
    description="Open one drawer of the cabinet and return a picture of what is inside it.",
    parameters={
        "type": "object",
        "properties": {"label": {"type": "string", "description": "The drawer's letter, e.g. \"A\"."}},
        "required": ["label"],
    },
)
def open_drawer(ctx: ToolContext, label: str) -> ToolOutput:
    """A picture of drawer `label`'s contents (from the sample's `metadata["drawers"]`), as the next image."""
    drawers = _drawers(ctx)
    key = _label(label)
    if key not in drawers:
        raise ToolError(f"there is no drawer {label!r}; the drawers are {', '.join(drawers)}", kind="bad_arguments")
    return ToolOutput(text=f"Opened drawer {key}; this is image {ctx.num_images}.",
                      images=[render_drawer(key, drawers[key])])


# ----------------------------------------------------------------------------------------------- the environment


@register_environment("drawers")
class DrawersEnvironment(ToolEnvironment):
    """The `drawers` task as an environment: the `open_drawer` tool, one call per turn by default (each opening
    is a step), drawers stay open (a second opening returns the image index it already has and no new image),
    and the final answer is graded with the `count` reward (`Observation.reward` when `done`).

    `info["opened"]` on every observation: the open drawers and their image indices.
    `DrawersEnvironment.tool_schemas()` gives the prompt's tool list from the class alone.
    """

    OFFERED_TOOLS = ("open_drawer",)

    @classmethod
    def tool_schemas(cls) -> list[dict]:
        """The schemas of the tools this environment offers, known without an instance (for building prompts from
        the registered class)."""
        return tool_schemas(list(cls.OFFERED_TOOLS))

    def __init__(self, timeout_s: float = 5.0, max_calls_per_turn: int = 1) -> None:
        super().__init__(tools=list(self.OFFERED_TOOLS), timeout_s=timeout_s, max_calls_per_turn=max_calls_per_turn)
        self.opened: dict[str, int] = {}

    def reset(self, sample: dict, ctx: ToolContext) -> Observation:
        self.opened = {}
        obs = super().reset(sample, ctx)
        obs.info["opened"] = {}
        return obs

    def step(self, assistant_text: str) -> Observation:
        obs = super().step(assistant_text)
        obs.info["opened"] = dict(self.opened)
        return obs

    def run_call(self, call: Union[ToolCall, ToolCallError]) -> ToolOutput:
        key = None
        if isinstance(call, ToolCall) and call.name == "open_drawer" and isinstance(call.arguments.get("label"), str):
            key = _label(call.arguments["label"])
            if key in self.opened:
                return ToolOutput(text=f"Drawer {key} is already open: it is image {self.opened[key]}.")
        index = self.ctx.num_images
        out = super().run_call(call)
        if key is not None and out.error is None and len(out.images) == 1:
            self.opened[key] = index
        return out

    def answer(self, text: str) -> Observation:
        reward = count_reward(text, self.sample) if self.sample is not None else 0.0
        return Observation(done=True, reward=reward, info={"calls": [], "errors": []})
