"""Procedural video task ``video_bounce_count`` (conventions shared with :mod:`.video`: frame ``k`` shows time
``k / fps``, flat colours, sizes at 112 px scaled with ``image_size / 112``).

``video_bounce_count`` (6.0 s at 2 fps, 12 frames): a ball moves horizontally at constant speed between two grey
walls (the left/right frame edges, ``wall`` px thick) and reflects off them; how many times does it bounce?

0. one ball (radius 9, red/green/blue/yellow), 0-3 bounces.
1. radius 7-9, 0-4 bounces, plus one static shape of another colour in another row.
2. radius 6-8, 0-4 bounces, plus a second ball of another colour moving (and bouncing) in another row; its
   bounces are not counted.

Bounces are counted over the continuous motion in ``[0, duration]``; the ball's centre ``x(t)`` is ``x0 + vx*t``
folded into ``[x_min, x_max] = [wall + r, width - 1 - wall - r]``. Every bounce is made visible in the sampled
frames: none happens before the second frame or after the second-to-last one (0.1 s margins), bounces are more
than two frame steps apart, and none happens in ``[duration, duration + 0.1]``; so the sign of the frame-to-frame
x displacement changes exactly once per bounce. Answer: the count as a digit string. Reward: ``count``.
"""

from __future__ import annotations

import math
import random

from PIL import ImageDraw

from mmrft.data.clips import VideoClip

from .base import SyntheticTask, register_task
from .video import (ALL_COLOURS, BASE_COLOURS, MARGIN_S, MAX_TRIES, WALL_RGB, _at, _clip, _other_colours, _px,
                    frame_count, frame_times)
from .scene import COLOURS, SHAPE_KINDS, blank_image, draw_objects, make_object, scale

__all__ = ["BounceCountTask", "ball_x", "bounce_times"]


BOUNCE_LEVELS = {
    0: {"colours": BASE_COLOURS, "radius": (9, 9), "counts": (0, 3), "static": 0, "balls": 0},
    1: {"colours": ALL_COLOURS, "radius": (7, 9), "counts": (0, 4), "static": 1, "balls": 0},
    2: {"colours": ALL_COLOURS, "radius": (6, 8), "counts": (0, 4), "static": 0, "balls": 1},
}


def _travel(scene: dict, ball: dict) -> tuple[float, float]:
    """(x_min, x_max) of a ball's centre between the walls."""
    return scene["wall"] + ball["radius"], scene["width"] - 1 - scene["wall"] - ball["radius"]


def ball_x(scene: dict, ball: dict, t: float) -> float:
    """Centre x of ``ball`` at time ``t``: ``x0 + vx*t`` reflected between the walls."""
    lo, hi = _travel(scene, ball)
    length = hi - lo
    u = (ball["x0"] - lo + ball["vx"] * t) % (2 * length)
    return lo + (u if u <= length else 2 * length - u)


def bounce_times(scene: dict, ball: dict, until: float | None = None) -> list[float]:
    """Times in ``(0, until]`` (default: the clip's duration) at which ``ball`` reaches a wall."""
    until = scene["duration"] if until is None else until
    lo, hi = _travel(scene, ball)
    length, vx = hi - lo, ball["vx"]
    if vx == 0:
        return []
    u0 = ball["x0"] - lo
    first = (length - u0) / vx if vx > 0 else u0 / -vx
    period = length / abs(vx)
    out, t = [], first
    while t <= until + 1e-12:
        if t > 0:
            out.append(t)
        t += period
    return out


@register_task("video_bounce_count")
class BounceCountTask(SyntheticTask):
    name = "video_bounce_count"
    reward = "count"
    modality = "video"
    difficulties = range(3)
    duration = 6.0
    fps = 2.0

    def _limits(self) -> tuple[float, float, float, float]:
        """(earliest first bounce, latest last bounce, no bounce before this after the end, min spacing)."""
        n = frame_count(self.duration, self.fps)
        step = 1.0 / self.fps
        return step + MARGIN_S, (n - 2) * step - MARGIN_S, self.duration + MARGIN_S, 2 * step + MARGIN_S

    def visible(self, scene: dict, ball: dict, count: int) -> bool:
        """Whether ``ball``'s bounces number ``count`` and all are visible in the frames (module docstring)."""
        first, last, after, spacing = self._limits()
        times = bounce_times(scene, ball, after)
        inside = [t for t in times if t <= scene["duration"]]
        if len(inside) != count or len(times) != count:
            return False
        if any(t < first or t > last for t in inside):
            return False
        return all(b - a >= spacing - 1e-9 for a, b in zip(inside, inside[1:]))

    def _sample_motion(self, rng: random.Random, count: int, length: float, image_size: int) -> tuple[float, float]:
        """(u0, vx): start offset from x_min and signed speed giving ``count`` visible bounces."""
        first, last, after, spacing = self._limits()
        v_min = 8.0 * image_size / 112  # px/s: at least ~4 px between frames at 2 fps
        if count == 0:
            v = rng.uniform(v_min, max(v_min, 0.8 * length / after))
            u0 = rng.uniform(0.05 * length, max(0.05 * length, length - v * after - 0.05 * length))
        else:
            t_lo = max(spacing, first, after / (count + 1), after - last)
            t_hi = min((last - first) / (count - 1) if count > 1 else math.inf, length / v_min)
            if t_hi <= t_lo:
                raise ValueError(f"video_bounce_count: {count} visible bounces do not fit a {self.duration} s clip")
            period = rng.uniform(t_lo, t_hi)
            b_lo, b_hi = max(first, after - count * period), min(period, last - (count - 1) * period)
            t1 = rng.uniform(b_lo, b_hi)
            v = length / period
            u0 = length - v * t1  # moving right: first bounce at t1
        if rng.random() < 0.5:  # mirror: move left from the mirrored start
            return length - u0, -v
        return u0, v

    def _ball(self, rng: random.Random, scene: dict, colour: str, radius: int, y: int, count: int | None,
              image_size: int, role: str) -> dict:
        lo, hi = _travel(scene, {"radius": radius})
        for _ in range(MAX_TRIES):
            n = count if count is not None else rng.randint(0, 3)
            u0, vx = self._sample_motion(rng, n, hi - lo, image_size)
            ball = {"colour": colour, "rgb": list(COLOURS[colour]), "radius": radius, "y": y,
                    "x0": round(lo + u0, 2), "vx": round(vx, 3), "role": role}
            if count is None or self.visible(scene, ball, count):
                return ball
        raise ValueError(f"video_bounce_count: could not sample a motion with {count} visible bounces")

    def _rows(self, rng: random.Random, sizes: list[int], image_size: int) -> list[int]:
        """Distinct row centres (y) for objects of the given radii, apart by their radii plus a margin."""
        pad, gap = scale(2, image_size), scale(4, image_size)
        for _ in range(MAX_TRIES):
            ys = [rng.randint(s + pad, image_size - 1 - s - pad) for s in sizes]
            if all(abs(ys[i] - ys[j]) > sizes[i] + sizes[j] + gap
                   for i in range(len(ys)) for j in range(i + 1, len(ys))):
                return ys
        raise ValueError(f"video_bounce_count: no room for {len(sizes)} rows on a {image_size}px canvas")

    def sample_scene(self, rng: random.Random, difficulty: int, image_size: int) -> dict:
        level = BOUNCE_LEVELS[difficulty]
        colour = rng.choice(level["colours"])
        radius = scale(rng.randint(*level["radius"]), image_size)
        count = rng.randint(*level["counts"])
        scene: dict = {"question": {"colour": colour}, "width": image_size, "height": image_size,
                       "wall": scale(3, image_size), "fps": self.fps, "duration": self.duration}
        extra = [scale(rng.randint(7, 10), image_size) for _ in range(level["static"] + level["balls"])]
        ys = self._rows(rng, [radius] + extra, image_size)
        scene["ball"] = self._ball(rng, scene, colour, radius, ys[0], count, image_size, "target")
        others = _other_colours(colour)
        scene["objects"], scene["other_balls"] = [], []
        for size, y in zip(extra[: level["static"]], ys[1:]):
            lo, hi = scene["wall"] + size + 1, image_size - 2 - scene["wall"] - size
            scene["objects"].append(make_object(rng.choice(SHAPE_KINDS), rng.choice(others),
                                                (rng.randint(lo, hi), y), size))
        for size, y in zip(extra[level["static"]:], ys[1 + level["static"]:]):
            scene["other_balls"].append(self._ball(rng, scene, rng.choice(others), size, y, None, image_size,
                                                   "distractor"))
        return scene

    def render(self, scene: dict, image_size: int) -> VideoClip:
        frames = []
        wall = scene["wall"]
        for t in frame_times(scene):
            im = blank_image(image_size)
            draw = ImageDraw.Draw(im)
            draw.rectangle([0, 0, wall - 1, image_size - 1], fill=WALL_RGB)
            draw.rectangle([image_size - wall, 0, image_size - 1, image_size - 1], fill=WALL_RGB)
            balls = [_at({"kind": "circle", "rgb": b["rgb"], "size": b["radius"]},
                         (_px(ball_x(scene, b, t)), b["y"])) for b in scene["other_balls"] + [scene["ball"]]]
            frames.append(draw_objects(im, scene["objects"] + balls))
        return _clip(frames, scene)

    def prompt(self, scene: dict) -> str:
        return f"How many times does the {scene['question']['colour']} ball bounce off a wall?"

    def rationale(self, scene: dict) -> str:
        return f"follow the {scene['question']['colour']} ball and count each turn it makes at a wall"

    def solve(self, scene: dict) -> str:
        return str(len(bounce_times(scene, scene["ball"])))


