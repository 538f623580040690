"""``ground``: bounding box of the one shape with the asked colour and kind.

Difficulty levels (sizes at 112 px, scaled with ``image_size / 112``):

0. the target alone (size 8-18).
1. target + 1-2 distractors of other colours (any kind, size 6-14).
2. target + 3-4 distractors of other colours.

Answer: ``[x1, y1, x2, y2]`` (ints, pixel coordinates, inclusive extremes of
the drawn shape). Reward: ``iou``. Metadata: ``box_format="pixel"``,
``image_size=[w, h]``, ``iou_threshold=0.5``.
"""

from __future__ import annotations

import random

from .base import SyntheticTask, register_task
from .scene import COLOURS, SHAPE_KINDS, place_objects, scale

N_DISTRACTORS = {0: (0, 0), 1: (1, 2), 2: (3, 4)}


@register_task("ground")
class GroundTask(SyntheticTask):
    name = "ground"
    reward = "iou"
    difficulties = range(3)

    def sample_scene(self, rng: random.Random, difficulty: int, image_size: int) -> dict:
        colour = rng.choice(sorted(COLOURS))
        kind = rng.choice(SHAPE_KINDS)
        specs = [{"kind": kind, "colour": colour, "size": scale(rng.randint(8, 18), image_size), "target": True}]
        others = [c for c in sorted(COLOURS) if c != colour]
        for _ in range(rng.randint(*N_DISTRACTORS[difficulty])):
            specs.append(
                {
                    "kind": rng.choice(SHAPE_KINDS),
                    "colour": rng.choice(others),
                    "size": scale(rng.randint(6, 14), image_size),
                    "target": False,
                }
            )
        rng.shuffle(specs)
        objects = place_objects(rng, specs, image_size)
        return {"question": {"colour": colour, "kind": kind}, "objects": objects}

    def prompt(self, scene: dict) -> str:
        q = scene["question"]
        return f"Where is the {q['colour']} {q['kind']}? Give its bounding box."

    def rationale(self, scene: dict) -> str:
        q = scene["question"]
        return f"locate the {q['colour']} {q['kind']}"

    def solve(self, scene: dict) -> list[int]:
        q = scene["question"]
        matches = [o for o in scene["objects"] if o["colour"] == q["colour"] and o["kind"] == q["kind"]]
        if len(matches) != 1:
            raise ValueError(f"ground scene must have exactly one target, found {len(matches)}")
        return [int(v) for v in matches[0]["bbox"]]

    def extra_metadata(self, scene: dict, image_size: int) -> dict:
        return {"box_format": "pixel", "iou_threshold": 0.5}
