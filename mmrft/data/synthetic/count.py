"""``count``: how many shapes of a colour and kind are in the image.

Difficulty levels (sizes at 112 px, scaled with ``image_size / 112``):

0. circles only, all of the asked colour (red/green/blue/yellow), count 1-5,
   radius 10, no overlaps, no distractors.
1. count 1-7 of the asked kind (circle or square) plus 1-3 shapes of the other
   kind in the same colour.
2. count 1-9 of the asked colour+kind, radius 7-10, plus 0-3 distractors whose
   colour differs from the asked one (any kind).

Answer: the count as a digit string, e.g. ``"3"``. Reward: ``count``.
"""

from __future__ import annotations

import random

from .base import SyntheticTask, register_task
from .scene import BASE_IMAGE_SIZE, COLOURS, grid_cell, place_objects, plural, scale

BASE_COLOURS = ("red", "green", "blue", "yellow")


@register_task("count")
class CountTask(SyntheticTask):
    name = "count"
    reward = "count"
    difficulties = range(3)

    def sample_scene(self, rng: random.Random, difficulty: int, image_size: int) -> dict:
        colour = rng.choice(BASE_COLOURS)
        specs: list[dict] = []
        if difficulty == 0:
            kind = "circle"
            n = rng.randint(1, 5)
            r = scale(10, image_size)
            specs = [{"kind": kind, "colour": colour, "size": r} for _ in range(n)]
        elif difficulty == 1:
            kind = rng.choice(("circle", "square"))
            other = "square" if kind == "circle" else "circle"
            n = rng.randint(1, 7)
            n_other = rng.randint(1, 3)
            r = scale(10, image_size)
            specs = [{"kind": kind, "colour": colour, "size": r} for _ in range(n)]
            specs += [{"kind": other, "colour": colour, "size": r} for _ in range(n_other)]
            rng.shuffle(specs)
        else:
            kind = rng.choice(("circle", "square"))
            n = rng.randint(1, 9)
            specs = [
                {"kind": kind, "colour": colour, "size": scale(rng.randint(7, 10), image_size)}
                for _ in range(n)
            ]
            others = [c for c in COLOURS if c != colour]
            for _ in range(rng.randint(0, 3)):
                specs.append(
                    {
                        "kind": rng.choice(("circle", "square", "triangle")),
                        "colour": rng.choice(others),
                        "size": scale(rng.randint(7, 10), image_size),
                    }
                )
            rng.shuffle(specs)
        objects = place_objects(rng, specs, image_size)
        return {"question": {"colour": colour, "kind": kind}, "objects": objects, "image_size": image_size}

    def prompt(self, scene: dict) -> str:
        q = scene["question"]
        return f"How many {q['colour']} {plural(q['kind'])} are in the image?"

    def rationale(self, scene: dict) -> str:
        """A grounded chain of thought: where each counted object is (3x3 grid, reading order), so the
        answer is the number of places listed, e.g. "red circles: top left, middle centre"."""
        q = scene["question"]
        size = scene.get("image_size", BASE_IMAGE_SIZE)
        hits = [o for o in scene["objects"] if o["colour"] == q["colour"] and o["kind"] == q["kind"]]
        hits.sort(key=lambda o: (o["center"][1] * 3 // size, o["center"][0]))
        return f"{q['colour']} {plural(q['kind'])}: " + ", ".join(grid_cell(o["center"], size) for o in hits)

    def solve(self, scene: dict) -> str:
        q = scene["question"]
        n = sum(1 for o in scene["objects"] if o["colour"] == q["colour"] and o["kind"] == q["kind"])
        return str(n)
