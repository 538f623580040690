"""``compare``: two-choice question about two shapes of different colours.

Difficulty levels (sizes at 112 px, scaled with ``image_size / 112``):

0. "Which shape is larger?" with a big area ratio (2.5x-4x).
1. "Which shape is further left?" / "... further right?" (the shapes' boxes
   are horizontally disjoint; sizes are similar).
2. "Which shape is larger?" with a small area ratio (1.25x-1.6x).

The prompt lists the options on lines ``A. the red circle`` / ``B. the blue
square``; option ``i`` describes ``scene["objects"][i]``. Answer: ``"A"`` or
``"B"``. Reward: ``choice``. ``metadata["options"]`` holds the option texts.
"""

from __future__ import annotations

import math
import random

from .base import SyntheticTask, register_task
from .scene import COLOURS, SHAPE_KINDS, area_of, place_objects, scale

LETTERS = ("A", "B")
QUESTIONS = {
    "larger": "Which shape is larger?",
    "left": "Which shape is further left?",
    "right": "Which shape is further right?",
}
RATIONALES = {
    "larger": "compare the sizes of the two shapes",
    "left": "compare the horizontal positions of the shapes",
    "right": "compare the horizontal positions of the shapes",
}
RATIO_BANDS = {0: (2.5, 4.0), 2: (1.25, 1.6)}


def _describe(obj: dict) -> str:
    return f"the {obj['colour']} {obj['kind']}"


@register_task("compare")
class CompareTask(SyntheticTask):
    name = "compare"
    reward = "choice"
    difficulties = range(3)

    def _size_pair(self, rng: random.Random, difficulty: int, image_size: int) -> list[dict]:
        """Specs (small, big) whose area ratio lies in the difficulty's band."""
        lo, hi = RATIO_BANDS[difficulty]
        cap = scale(26, image_size)
        for _ in range(50):
            k_small, k_big = rng.choice(SHAPE_KINDS), rng.choice(SHAPE_KINDS)
            s = scale(rng.randint(7, 12), image_size)
            ratio = rng.uniform(lo, hi)
            big = int(round(s * math.sqrt(ratio * area_of(k_small, 1) / area_of(k_big, 1))))
            actual = area_of(k_big, big) / area_of(k_small, s)
            if big <= cap and lo <= actual <= hi:
                return [{"kind": k_small, "size": s}, {"kind": k_big, "size": big}]
        # Fallback (tiny canvases): same kind, strictly larger size.
        kind = rng.choice(SHAPE_KINDS)
        s = scale(8 if difficulty == 0 else 12, image_size)
        big = max(s + 1, scale(16 if difficulty == 0 else 14, image_size))
        return [{"kind": kind, "size": s}, {"kind": kind, "size": big}]

    def sample_scene(self, rng: random.Random, difficulty: int, image_size: int) -> dict:
        c1, c2 = rng.sample(sorted(COLOURS), 2)
        accept = None
        if difficulty == 1:
            question = rng.choice(("left", "right"))
            specs = [
                {"kind": rng.choice(SHAPE_KINDS), "size": scale(rng.randint(8, 14), image_size)}
                for _ in range(2)
            ]
            gap = scale(4, image_size)

            def accept(objs: list[dict]) -> bool:
                a, b = objs[0]["bbox"], objs[1]["bbox"]
                return a[2] + gap < b[0] or b[2] + gap < a[0]

        else:
            question = "larger"
            specs = self._size_pair(rng, difficulty, image_size)
        specs[0]["colour"], specs[1]["colour"] = c1, c2
        rng.shuffle(specs)
        objects = place_objects(rng, specs, image_size, accept=accept)
        if question == "larger" and objects[0]["area"] == objects[1]["area"]:
            raise ValueError(f"compare: image_size {image_size} too small for distinct sizes")
        return {
            "question": question,
            "objects": objects,
            "options": [_describe(o) for o in objects],
        }

    def prompt(self, scene: dict) -> str:
        lines = [QUESTIONS[scene["question"]]]
        lines += [f"{letter}. {opt}" for letter, opt in zip(LETTERS, scene["options"])]
        return "\n".join(lines)

    def rationale(self, scene: dict) -> str:
        return RATIONALES[scene["question"]]

    def solve(self, scene: dict) -> str:
        objs = scene["objects"]
        q = scene["question"]
        if q == "larger":
            key = [area_of(o["kind"], o["size"]) for o in objs]
            return LETTERS[max(range(2), key=key.__getitem__)]
        xs = [o["center"][0] for o in objs]
        if q == "left":
            return LETTERS[min(range(2), key=xs.__getitem__)]
        if q == "right":
            return LETTERS[max(range(2), key=xs.__getitem__)]
        raise ValueError(f"unknown question {q!r}")

    def extra_metadata(self, scene: dict, image_size: int) -> dict:
        return {"options": list(scene["options"])}
