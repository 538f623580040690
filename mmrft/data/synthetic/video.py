"""Procedural *video* tasks: short clips of flat-coloured shapes whose answers follow from the scene alone.

Every clip is ``duration`` seconds sampled at ``fps`` (both kept in the scene; frame ``k`` shows time ``k / fps``,
``k = 0 .. ceil(duration * fps) - 1``), drawn on a white ``image_size`` x ``image_size`` canvas with the saturated
:data:`~mmrft.data.synthetic.scene.COLOURS` and no anti-aliasing, so every shape pixel has its exact colour before
compression. Sizes below are given at 112 px and scaled with ``image_size / 112``. :meth:`render` returns a
:class:`~mmrft.data.clips.VideoClip`; datasets store it as ``videos/<id>.mp4``
(:func:`mmrft.data.video.write_video`). The easy end is meant to be learnable by a tiny VLM in minutes: big
shapes, long clear motion, nothing else in the frame.

``video_direction`` (4.0 s at 2 fps, 8 frames): which way does the named shape move?

0. one circle or square (size 14, red/green/blue/yellow) moving 50-64 px along one axis between the first and
   the last frame; nothing else.
1. any kind and colour, size 9-12, 32-48 px along one axis, plus one static shape of another colour kept clear
   of the target's path.
2. size 7-10, 24-40 px along the dominant axis plus a perpendicular drift of 15-45 % of it; one static shape and
   one shape moving another way (both other colours, drawn beneath the target); the options are shuffled.

Options ``left/right/up/down`` (``metadata["options"]``) are listed as ``A. left`` ... in the prompt.
Answer: the letter (``"A"``-``"D"``). Reward: ``choice``. Up is towards the top of the frame (smaller y).

``video_bounce_count`` lives in :mod:`.video_bounce` (it shares the helpers below).

``video_temporal_ground`` (4.0 s at 2 fps, 8 frames): between which seconds is the named square visible?

0. one square (size 16) shown on an otherwise empty canvas for at least 1 s.
1. square size 10-14, at least 1 s, plus one always-visible shape of another colour.
2. square size 8-12, at least 0.5 s, plus one always-visible shape and a decoy square of another colour visible
   over a different interval.

``start`` and ``end`` lie on frame times (``k / fps``: whole or half seconds), never span the whole clip, and the
square is drawn on exactly the frames with ``start <= t < end``. Answer: ``[start, end]`` in seconds (floats).
Reward: ``temporal_iou``.
"""

from __future__ import annotations

import math
import random

from PIL import Image

from mmrft.data.clips import VideoClip

from .base import SyntheticTask, register_task
from .scene import (BASE_IMAGE_SIZE, COLOURS, SHAPE_KINDS, bbox_of, blank_image, draw_objects, grid_cell, make_object,
                    place_objects, scale)

__all__ = [
    "DirectionTask",
    "TemporalGroundTask",
    "direction_of",
    "frame_count",
    "frame_times",
    "object_center",
]

BASE_COLOURS = ("red", "green", "blue", "yellow")
ALL_COLOURS = tuple(sorted(COLOURS))
LETTERS = ("A", "B", "C", "D")
DIRECTIONS = ("left", "right", "up", "down")
UNIT = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
WALL_RGB = (90, 90, 90)
MARGIN_S = 0.1  # seconds kept between a bounce and the frame-visibility limits
MAX_TRIES = 200


# ------------------------------------------------------------------ shared helpers


def frame_count(duration: float, fps: float) -> int:
    """Frames of a clip: every ``k / fps`` inside ``[0, duration)``."""
    return max(1, math.ceil(duration * fps - 1e-9))


def frame_times(scene: dict) -> list[float]:
    """The frame times ``k / fps`` of a scene's clip."""
    fps = scene["fps"]
    return [k / fps for k in range(frame_count(scene["duration"], fps))]


def _px(value: float) -> int:
    """Round half up to a pixel coordinate."""
    return int(math.floor(value + 0.5))


def object_center(obj: dict, t: float) -> tuple[int, int]:
    """Pixel centre at time ``t`` of an object moving at constant ``velocity`` (px/s) from ``center``."""
    vx, vy = obj.get("velocity", (0.0, 0.0))
    return _px(obj["center"][0] + vx * t), _px(obj["center"][1] + vy * t)


def _at(obj: dict, center: tuple[int, int]) -> dict:
    """The drawable form of ``obj`` moved to ``center``."""
    return {"kind": obj["kind"], "rgb": obj["rgb"], "center": list(center), "bbox": bbox_of(center, obj["size"])}


def _clip(frames: list[Image.Image], scene: dict) -> VideoClip:
    return VideoClip(frames=frames, timestamps=frame_times(scene), fps=float(scene["fps"]),
                     duration=float(scene["duration"]))


def _other_colours(colour: str) -> list[str]:
    return [c for c in ALL_COLOURS if c != colour]


# ------------------------------------------------------------------ video_direction

DIRECTION_LEVELS = {
    0: {"kinds": ("circle", "square"), "colours": BASE_COLOURS, "size": (14, 14), "span": (50, 64),
        "drift": None, "static": 0, "moving": 0, "shuffle": False},
    1: {"kinds": SHAPE_KINDS, "colours": ALL_COLOURS, "size": (9, 12), "span": (32, 48),
        "drift": None, "static": 1, "moving": 0, "shuffle": False},
    2: {"kinds": SHAPE_KINDS, "colours": ALL_COLOURS, "size": (7, 10), "span": (24, 40),
        "drift": (0.15, 0.45), "static": 1, "moving": 1, "shuffle": True},
}


def _start_range(size: int, shift: int, image_size: int) -> tuple[int, int]:
    """Start coordinates keeping a shape of half-size ``size`` inside the canvas over a ``shift`` px move."""
    pad = scale(2, image_size)
    lo, hi = size + pad, image_size - 1 - size - pad
    return lo - min(0, shift), hi - max(0, shift)


def _moving_object(rng: random.Random, kind: str, colour: str, size: int, shift: tuple[int, int],
                   t_last: float, image_size: int, role: str) -> dict:
    """A shape whose centre moves by ``shift`` px between t=0 and ``t_last`` and stays inside the canvas."""
    (xlo, xhi), (ylo, yhi) = (_start_range(size, s, image_size) for s in shift)
    if xhi < xlo or yhi < ylo:
        raise ValueError(f"video_direction: a {shift} px move does not fit a {image_size}px canvas")
    start = (rng.randint(xlo, xhi), rng.randint(ylo, yhi))
    velocity = [round(shift[0] / t_last, 4), round(shift[1] / t_last, 4)]
    return make_object(kind, colour, start, size, velocity=velocity, role=role)


def _swept_box(obj: dict, times: list[float]) -> list[int]:
    boxes = [bbox_of(object_center(obj, t), obj["size"]) for t in times]
    return [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]


def _boxes_apart(a: list[int], b: list[int], gap: int) -> bool:
    return a[2] + gap < b[0] or b[2] + gap < a[0] or a[3] + gap < b[1] or b[3] + gap < a[1]


def _static_clear_of(rng: random.Random, kind: str, colour: str, size: int, keep_out: list[int],
                     image_size: int) -> dict | None:
    """A static shape whose box is clear of ``keep_out``; None when no spot was found."""
    lo, hi = _start_range(size, 0, image_size)
    gap = scale(3, image_size)
    for _ in range(MAX_TRIES):
        center = (rng.randint(lo, hi), rng.randint(lo, hi))
        if _boxes_apart(bbox_of(center, size), keep_out, gap):
            return make_object(kind, colour, center, size, velocity=[0.0, 0.0], role="static")
    return None


def direction_of(obj: dict) -> str:
    """The dominant direction of an object's velocity (image y grows downwards)."""
    vx, vy = obj["velocity"]
    if abs(vx) >= abs(vy):
        return "right" if vx > 0 else "left"
    return "down" if vy > 0 else "up"


@register_task("video_direction")
class DirectionTask(SyntheticTask):
    name = "video_direction"
    reward = "choice"
    modality = "video"
    difficulties = range(3)
    duration = 4.0
    fps = 2.0

    def sample_scene(self, rng: random.Random, difficulty: int, image_size: int) -> dict:
        level = DIRECTION_LEVELS[difficulty]
        times = [k / self.fps for k in range(frame_count(self.duration, self.fps))]
        t_last = max(times[-1], 1.0 / self.fps)
        colour = rng.choice(level["colours"])
        kind = rng.choice(level["kinds"])
        size = scale(rng.randint(*level["size"]), image_size)
        direction = rng.choice(DIRECTIONS)
        options = list(DIRECTIONS)
        if level["shuffle"]:
            rng.shuffle(options)
        for _ in range(MAX_TRIES):
            span = scale(rng.randint(*level["span"]), image_size)
            drift = 0
            if level["drift"]:
                drift = int(round(span * rng.uniform(*level["drift"]))) * rng.choice((-1, 1))
            ux, uy = UNIT[direction]
            shift = (ux * span + (drift if uy else 0), uy * span + (drift if ux else 0))
            target = _moving_object(rng, kind, colour, size, shift, t_last, image_size, "target")
            others = self._distractors(rng, level, target, direction, times, t_last, image_size)
            if others is not None:
                break
        else:
            raise ValueError(f"video_direction: could not lay out a scene on a {image_size}px canvas")
        return {
            "question": {"colour": colour, "kind": kind},
            "objects": others + [target],  # drawn in order: the target on top
            "options": options,
            "fps": self.fps,
            "duration": self.duration,
            "image_size": image_size,
        }

    def _distractors(self, rng: random.Random, level: dict, target: dict, direction: str, times: list[float],
                     t_last: float, image_size: int) -> list[dict] | None:
        others: list[dict] = []
        keep_out = _swept_box(target, times)
        for _ in range(level["static"]):
            obj = _static_clear_of(rng, rng.choice(SHAPE_KINDS), rng.choice(_other_colours(target["colour"])),
                                   scale(rng.randint(7, 12), image_size), keep_out, image_size)
            if obj is None:
                return None
            others.append(obj)
        for _ in range(level["moving"]):
            way = rng.choice([d for d in DIRECTIONS if d != direction])
            span = scale(rng.randint(20, 40), image_size)
            shift = (UNIT[way][0] * span, UNIT[way][1] * span)
            colours = [c for c in _other_colours(target["colour"]) if all(o["colour"] != c for o in others)]
            others.append(_moving_object(rng, rng.choice(SHAPE_KINDS), rng.choice(colours),
                                         scale(rng.randint(7, 10), image_size), shift, t_last, image_size, "moving"))
        return others

    def render(self, scene: dict, image_size: int) -> VideoClip:
        frames = []
        for t in frame_times(scene):
            moved = [_at(o, object_center(o, t)) for o in scene["objects"]]
            frames.append(draw_objects(blank_image(image_size), moved))
        return _clip(frames, scene)

    def _target(self, scene: dict) -> dict:
        q = scene["question"]
        hits = [o for o in scene["objects"] if o["colour"] == q["colour"] and o["kind"] == q["kind"]]
        if len(hits) != 1:
            raise ValueError(f"video_direction scene must have exactly one target, found {len(hits)}")
        return hits[0]

    def prompt(self, scene: dict) -> str:
        q = scene["question"]
        lines = [f"Which way does the {q['colour']} {q['kind']} move?"]
        lines += [f"{letter}. {opt}" for letter, opt in zip(LETTERS, scene["options"])]
        return "\n".join(lines)

    def rationale(self, scene: dict) -> str:
        """Grounded, like `count`'s: where the shape is in the first and in the last frame (3x3 grid), e.g.
        "red circle: middle left, then middle right"; the option is then a matter of reading the two places."""
        q = scene["question"]
        target, times = self._target(scene), frame_times(scene)
        size = scene.get("image_size", BASE_IMAGE_SIZE)
        first, last = (grid_cell(object_center(target, t), size) for t in (times[0], times[-1]))
        return f"{q['colour']} {q['kind']}: {first}, then {last}"

    def solve(self, scene: dict) -> str:
        return LETTERS[scene["options"].index(direction_of(self._target(scene)))]

    def extra_metadata(self, scene: dict, image_size: int) -> dict:
        return {"options": list(scene["options"])}


# ------------------------------------------------------------------ video_temporal_ground

GROUND_LEVELS = {
    0: {"colours": BASE_COLOURS, "size": (16, 16), "min_frames_s": 1.0, "static": 0, "decoy": False},
    1: {"colours": ALL_COLOURS, "size": (10, 14), "min_frames_s": 1.0, "static": 1, "decoy": False},
    2: {"colours": ALL_COLOURS, "size": (8, 12), "min_frames_s": 0.5, "static": 1, "decoy": True},
}


def _interval(rng: random.Random, n: int, min_len: int, exclude: tuple[int, int] | None = None) -> tuple[int, int]:
    """Frame indices ``[i, j)`` with ``j - i >= min_len``, not the whole clip, and not equal to ``exclude``."""
    choices = [(i, j) for i in range(n) for j in range(i + min_len, n + 1)
               if (i, j) != (0, n) and (i, j) != exclude]
    if not choices:
        raise ValueError(f"video_temporal_ground: no interval of {min_len}+ frames in a {n}-frame clip")
    return rng.choice(choices)


@register_task("video_temporal_ground")
class TemporalGroundTask(SyntheticTask):
    name = "video_temporal_ground"
    reward = "temporal_iou"
    modality = "video"
    difficulties = range(3)
    duration = 4.0
    fps = 2.0

    def sample_scene(self, rng: random.Random, difficulty: int, image_size: int) -> dict:
        level = GROUND_LEVELS[difficulty]
        n = frame_count(self.duration, self.fps)
        colour = rng.choice(level["colours"])
        others = _other_colours(colour)
        specs = [{"kind": "square", "colour": colour, "size": scale(rng.randint(*level["size"]), image_size),
                  "role": "target"}]
        for _ in range(level["static"]):
            specs.append({"kind": rng.choice(SHAPE_KINDS), "colour": rng.choice(others),
                          "size": scale(rng.randint(8, 12), image_size), "role": "static"})
        if level["decoy"]:
            used = {s["colour"] for s in specs}
            specs.append({"kind": "square", "colour": rng.choice([c for c in others if c not in used]),
                          "size": scale(rng.randint(*level["size"]), image_size), "role": "decoy"})
        objects = place_objects(rng, specs, image_size)
        min_len = max(1, int(round(level["min_frames_s"] * self.fps)))
        i, j = _interval(rng, n, min_len)
        for obj in objects:
            if obj["role"] == "target":
                obj["start"], obj["end"] = i / self.fps, j / self.fps
            elif obj["role"] == "decoy":
                di, dj = _interval(rng, n, min_len, exclude=(i, j))
                obj["start"], obj["end"] = di / self.fps, dj / self.fps
        return {"question": {"colour": colour, "kind": "square"}, "objects": objects,
                "fps": self.fps, "duration": self.duration}

    def render(self, scene: dict, image_size: int) -> VideoClip:
        frames = []
        for t in frame_times(scene):
            shown = [o for o in scene["objects"] if "start" not in o or o["start"] <= t + 1e-9 < o["end"]]
            frames.append(draw_objects(blank_image(image_size), shown))
        return _clip(frames, scene)

    def _target(self, scene: dict) -> dict:
        q = scene["question"]
        hits = [o for o in scene["objects"] if o["colour"] == q["colour"] and o["kind"] == q["kind"]]
        if len(hits) != 1:
            raise ValueError(f"video_temporal_ground scene must have exactly one target, found {len(hits)}")
        return hits[0]

    def prompt(self, scene: dict) -> str:
        q = scene["question"]
        return f"Between which seconds is the {q['colour']} {q['kind']} visible? Answer as [start, end]."

    def rationale(self, scene: dict) -> str:
        q = scene["question"]
        return f"find the first and the last frame that show the {q['colour']} {q['kind']}"

    def solve(self, scene: dict) -> list[float]:
        target = self._target(scene)
        return [float(target["start"]), float(target["end"])]
