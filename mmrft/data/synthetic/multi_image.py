"""Multi-image tasks: questions that can only be answered by looking at several pictures together.

Single-image tasks never make a model relate one picture to another; these two do, with the same
shapes, colours and drawing as :mod:`.count` (see :mod:`.scene`), so the only new skill is the
cross-image comparison. Both tasks have ``modality = "multi_image"``: :meth:`render` returns one
``image_size`` x ``image_size`` RGB picture per entry of ``scene["images"]`` (a list of per-image
object lists), and the prompt refers to them in order ("the first image", "the second image").

``multi_image_more`` -- "Which image has more <colour> shapes?". Difficulty levels (sizes at 112 px,
scaled with ``image_size / 112``):

0. two images, circles only, all of the asked colour (red/green/blue/yellow), radius 12, counts 1-5
   that differ by at least 2, no distractors.
1. two images, shapes of any kind (size 9-12) of the asked colour (any of the six), counts 1-6 that
   differ by at least 1, plus 1-3 shapes of other colours in each image.
2. three images (options A-C), counts 1-8, all different, size 7-10, plus 2-4 other-colour shapes
   in each image.

``multi_image_change`` -- the second image is the first with exactly one change; "What changed
between the two pictures?". The options are a fixed-order prefix of ``a shape was added`` /
``a shape was removed`` / ``a shape changed colour`` / ``a shape moved``:

0. options A-B only (added / removed); circles of radius 14; the image with fewer shapes has 1-3.
1. all four options; 2-4 shapes of any kind and colour (size 10-13) that are in both images (plus
   the added / removed one).
2. all four options; 4-7 such shapes (size 7-10), so the change is harder to spot.

A moved shape keeps its kind, colour and size and lands where it does not touch its old place; a
recoloured shape keeps its kind, size and place. ``metadata["change"]`` names the change (``added``,
``removed``, ``recoloured`` or ``moved``), for per-kind evaluation.

Both tasks list the options on lines ``A. ...`` after the question, keep the option texts in
``metadata["options"]`` (and ``scene["options"]``) and answer with the letter; reward ``choice``.
:meth:`solve` re-derives the answer from the drawn objects alone (it does not trust a stored label).
"""

from __future__ import annotations

import random
from collections import Counter

from PIL import Image

from .base import SyntheticTask, register_task
from .scene import COLOURS, SHAPE_KINDS, blank_image, draw_objects, make_object, place_objects, scale

__all__ = ["CHANGES", "MultiImageChangeTask", "MultiImageMoreTask"]

LETTERS = ("A", "B", "C", "D")
ORDINALS = ("first", "second", "third")
BASE_COLOURS = ("red", "green", "blue", "yellow")

#: Change kinds of ``multi_image_change`` and their option texts, in the fixed option order.
CHANGES: dict[str, str] = {
    "added": "a shape was added",
    "removed": "a shape was removed",
    "recoloured": "a shape changed colour",
    "moved": "a shape moved",
}
CHANGE_QUESTION = "What changed between the two pictures (from the first image to the second image)?"


def _options_prompt(question: str, options: list[str]) -> str:
    return "\n".join([question] + [f"{letter}. {opt}" for letter, opt in zip(LETTERS, options)])


def _render_images(scene: dict, image_size: int) -> list[Image.Image]:
    return [draw_objects(blank_image(image_size), objects) for objects in scene["images"]]


# --------------------------------------------------------------- multi_image_more

# difficulty -> number of images, max count of the asked colour, min gap between counts, shape sizes (at
# 112 px), kinds of the asked-colour shapes, other-colour distractors per image
MORE_LEVELS: dict[int, dict] = {
    0: {"n_images": 2, "max_count": 5, "gap": 2, "sizes": (12, 12), "kinds": ("circle",), "distractors": (0, 0)},
    1: {"n_images": 2, "max_count": 6, "gap": 1, "sizes": (9, 12), "kinds": SHAPE_KINDS, "distractors": (1, 3)},
    2: {"n_images": 3, "max_count": 8, "gap": 1, "sizes": (7, 10), "kinds": SHAPE_KINDS, "distractors": (2, 4)},
}


def _distinct_counts(rng: random.Random, n: int, max_count: int, gap: int) -> list[int]:
    """``n`` counts in 1..max_count, pairwise at least ``gap`` apart, in random order."""
    while True:
        counts = rng.sample(range(1, max_count + 1), n)
        ordered = sorted(counts)
        if all(b - a >= gap for a, b in zip(ordered, ordered[1:])):
            return counts


@register_task("multi_image_more")
class MultiImageMoreTask(SyntheticTask):
    name = "multi_image_more"
    reward = "choice"
    difficulties = range(3)
    modality = "multi_image"

    def _image_specs(self, rng: random.Random, level: dict, colour: str, count: int,
                     image_size: int) -> list[dict]:
        lo, hi = level["sizes"]
        specs = [{"kind": rng.choice(level["kinds"]), "colour": colour,
                  "size": scale(rng.randint(lo, hi), image_size)} for _ in range(count)]
        others = [c for c in sorted(COLOURS) if c != colour]
        for _ in range(rng.randint(*level["distractors"])):
            specs.append({"kind": rng.choice(SHAPE_KINDS), "colour": rng.choice(others),
                          "size": scale(rng.randint(lo, hi), image_size)})
        rng.shuffle(specs)
        return specs

    def sample_scene(self, rng: random.Random, difficulty: int, image_size: int) -> dict:
        level = MORE_LEVELS[difficulty]
        colour = rng.choice(BASE_COLOURS if difficulty == 0 else sorted(COLOURS))
        counts = _distinct_counts(rng, level["n_images"], level["max_count"], level["gap"])
        images = [place_objects(rng, self._image_specs(rng, level, colour, n, image_size), image_size)
                  for n in counts]
        return {
            "question": {"colour": colour},
            "images": images,
            "options": [f"the {ORDINALS[k]} image" for k in range(len(images))],
            "image_size": image_size,
        }

    def render(self, scene: dict, image_size: int) -> list[Image.Image]:
        return _render_images(scene, image_size)

    def prompt(self, scene: dict) -> str:
        return _options_prompt(f"Which image has more {scene['question']['colour']} shapes?", scene["options"])

    def rationale(self, scene: dict) -> str:
        return f"count the {scene['question']['colour']} shapes in each image"

    def solve(self, scene: dict) -> str:
        colour = scene["question"]["colour"]
        counts = [sum(1 for o in objects if o["colour"] == colour) for objects in scene["images"]]
        best = max(counts)
        if counts.count(best) != 1:
            raise ValueError(f"multi_image_more: tied counts {counts}")
        return LETTERS[counts.index(best)]

    def extra_metadata(self, scene: dict, image_size: int) -> dict:
        return {"options": list(scene["options"])}


# ------------------------------------------------------------- multi_image_change

# difficulty -> allowed changes, shapes in both images, sizes (at 112 px), kinds
CHANGE_LEVELS: dict[int, dict] = {
    0: {"changes": ("added", "removed"), "count": (1, 3), "sizes": (14, 14), "kinds": ("circle",)},
    1: {"changes": tuple(CHANGES), "count": (2, 4), "sizes": (10, 13), "kinds": SHAPE_KINDS},
    2: {"changes": tuple(CHANGES), "count": (4, 7), "sizes": (7, 10), "kinds": SHAPE_KINDS},
}


def _shape_key(obj: dict, *fields: str) -> tuple:
    return tuple(tuple(obj[f]) if isinstance(obj[f], list) else obj[f] for f in fields)


def diff_change(before: list[dict], after: list[dict]) -> str:
    """Which single change turns the object list ``before`` into ``after`` (a key of :data:`CHANGES`)."""
    if len(after) == len(before) + 1:
        return "added"
    if len(after) == len(before) - 1:
        return "removed"
    if len(after) != len(before):
        raise ValueError(f"multi_image_change: {len(before)} -> {len(after)} shapes is not one change")

    def multiset(objs: list[dict], *fields: str) -> Counter:
        return Counter(_shape_key(o, *fields) for o in objs)

    same_places = multiset(before, "kind", "size", "center") == multiset(after, "kind", "size", "center")
    same_looks = multiset(before, "kind", "size", "colour") == multiset(after, "kind", "size", "colour")
    if same_places and not same_looks:
        return "recoloured"
    if same_looks and not same_places:
        return "moved"
    raise ValueError("multi_image_change: the two images do not differ by exactly one change")


Pair = tuple[list[dict], list[dict]]


def _add_or_remove(rng: random.Random, change: str, specs: list[dict], extra: dict, image_size: int) -> Pair:
    """``extra`` is the shape in only one image (the second for ``added``, the first for ``removed``);
    ``specs`` are in both. All are placed together, so the extra shape keeps clear of the others."""
    objects = place_objects(rng, [extra] + specs, image_size)
    fewer, more = objects[1:], list(objects)
    rng.shuffle(more)
    return (fewer, more) if change == "added" else (more, fewer)


def _move(rng: random.Random, change: str, specs: list[dict], extra: dict, image_size: int) -> Pair:
    """One shape moves: a copy of its spec is placed with the others (so its new place touches
    neither its old place nor any other shape) and replaces it in the second image."""
    k = rng.randrange(len(specs))
    objects = place_objects(rng, specs + [dict(specs[k])], image_size)
    before = objects[:-1]
    return before, [objects[-1] if i == k else o for i, o in enumerate(before)]


def _recolour(rng: random.Random, change: str, specs: list[dict], extra: dict, image_size: int) -> Pair:
    """One shape keeps its kind, size and place and gets another colour."""
    before = place_objects(rng, specs, image_size)
    k = rng.randrange(len(before))
    old = before[k]
    colour = rng.choice([c for c in sorted(COLOURS) if c != old["colour"]])
    return before, [make_object(old["kind"], colour, old["center"], old["size"]) if i == k else o
                    for i, o in enumerate(before)]


@register_task("multi_image_change")
class MultiImageChangeTask(SyntheticTask):
    name = "multi_image_change"
    reward = "choice"
    difficulties = range(3)
    modality = "multi_image"

    def _spec(self, rng: random.Random, level: dict, image_size: int) -> dict:
        lo, hi = level["sizes"]
        return {"kind": rng.choice(level["kinds"]), "colour": rng.choice(sorted(COLOURS)),
                "size": scale(rng.randint(lo, hi), image_size)}

    def sample_scene(self, rng: random.Random, difficulty: int, image_size: int) -> dict:
        level = CHANGE_LEVELS[difficulty]
        change = rng.choice(level["changes"])
        specs = [self._spec(rng, level, image_size) for _ in range(rng.randint(*level["count"]))]
        make_pair = {"added": _add_or_remove, "removed": _add_or_remove, "moved": _move, "recoloured": _recolour}
        before, after = make_pair[change](rng, change, specs, self._spec(rng, level, image_size), image_size)
        options = [CHANGES[c] for c in CHANGES if c in level["changes"]]
        return {"question": "change", "images": [before, after], "options": options, "image_size": image_size}

    def render(self, scene: dict, image_size: int) -> list[Image.Image]:
        return _render_images(scene, image_size)

    def prompt(self, scene: dict) -> str:
        return _options_prompt(CHANGE_QUESTION, scene["options"])

    def rationale(self, scene: dict) -> str:
        return "compare the shapes in the two images"

    def solve(self, scene: dict) -> str:
        before, after = scene["images"]
        return LETTERS[scene["options"].index(CHANGES[diff_change(before, after)])]

    def extra_metadata(self, scene: dict, image_size: int) -> dict:
        return {"options": list(scene["options"]), "change": diff_change(*scene["images"])}
