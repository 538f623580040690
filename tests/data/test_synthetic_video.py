"""Synthetic video tasks: every answer is re-derived here independently of the task's own ``solve`` (from the
rendered pixels, or from the scene with a simulation written in this file), plus determinism and a dataset that
round-trips through mp4."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import mmrft.data.synthetic  # noqa: F401  (registers the video tasks)
from mmrft.data.sources import load_samples
from mmrft.data.synthetic.base import generate_items, get_task, write_dataset
from mmrft.data.synthetic.scene import COLOURS
from mmrft.data.video import load_video

TASKS = ("video_direction", "video_bounce_count", "video_temporal_ground")
N_ITEMS = 40  # per task and difficulty
LETTERS = "ABCD"
WHITE = (255, 255, 255)
REWARDS = {"video_direction": "choice", "video_bounce_count": "count", "video_temporal_ground": "temporal_iou"}


def items(task: str, difficulty: int, n: int = N_ITEMS, seed: int = 7, image_size: int = 112):
    return generate_items(task, n, seed=seed, difficulty=difficulty, image_size=image_size)


def mask(frame, rgb, tol: int = 0) -> np.ndarray:
    """Pixels of exactly (or within ``tol`` per channel of) ``rgb``."""
    a = np.asarray(frame, dtype=np.int16)
    return (np.abs(a - np.asarray(rgb, dtype=np.int16)) <= tol).all(axis=-1)


def centroid(frame, rgb, tol: int = 0) -> tuple[float, float]:
    ys, xs = np.nonzero(mask(frame, rgb, tol))
    assert len(xs), f"no pixel of colour {rgb}"
    return float(xs.mean()), float(ys.mean())


def cells_near(frame, rgb) -> set[str]:
    """3x3 grid cells ("top left" ... "bottom right") of the shape's box centre, allowing 1 px either way (the
    rasterised box may sit half a pixel off the shape's centre)."""
    ys, xs = np.nonzero(mask(frame, rgb))
    cx, cy, size = (xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2, frame.size[0]
    cols, rows = ("left", "centre", "right"), ("top", "middle", "bottom")
    return {f"{rows[min(int(y) * 3 // size, 2)]} {cols[min(int(x) * 3 // size, 2)]}"
            for x in (cx - 1, cx, cx + 1) for y in (cy - 1, cy, cy + 1)}


def frame_colours(frame) -> set[tuple[int, int, int]]:
    a = np.asarray(frame, dtype=np.int32).reshape(-1, 3)
    packed = np.unique((a[:, 0] << 16) | (a[:, 1] << 8) | a[:, 2])
    return {(int(c >> 16), int(c >> 8) & 255, int(c) & 255) for c in packed}


# --------------------------------------------------------------------------- common properties


@pytest.mark.parametrize("task", TASKS)
def test_registration_and_clip_shape(task):
    t = get_task(task)
    assert t.modality == "video" and list(t.difficulties) == [0, 1, 2]
    assert t.reward == REWARDS[task]
    for d in t.difficulties:
        item = items(task, d, n=1)[0]
        clip, scene = item.video, item.metadata["scene"]
        n = round(scene["duration"] * scene["fps"])
        assert len(clip.frames) == n and clip.fps == scene["fps"] and clip.duration == scene["duration"]
        assert clip.timestamps == [k / scene["fps"] for k in range(n)]
        assert all(im.size == (112, 112) and im.mode == "RGB" for im in clip.frames)
        assert item.image is None and item.metadata["difficulty"] == d
        json.dumps(item.metadata)  # JSON-able


@pytest.mark.parametrize("task", TASKS)
def test_deterministic_per_seed_and_index(task):
    a, b = items(task, 2, n=3), items(task, 2, n=3)
    for x, y in zip(a, b):
        assert x.metadata == y.metadata and x.answer == y.answer and x.prompt == y.prompt
        assert all(np.array_equal(np.asarray(f), np.asarray(g)) for f, g in zip(x.video.frames, y.video.frames))
    assert items(task, 2, n=3)[2].metadata == generate_items(task, 5, seed=7, difficulty=2)[2].metadata
    other = items(task, 2, n=3, seed=8)
    assert [x.metadata["scene"] for x in a] != [x.metadata["scene"] for x in other]


@pytest.mark.parametrize("task", TASKS)
def test_small_canvas(task):
    for d in range(3):
        for item in items(task, d, n=5, image_size=64):
            assert item.video.size == (64, 64)


# --------------------------------------------------------------------------- video_direction


def pixel_direction(item) -> str:
    rgb = COLOURS[item.metadata["scene"]["question"]["colour"]]
    (x0, y0), (x1, y1) = centroid(item.video.frames[0], rgb), centroid(item.video.frames[-1], rgb)
    dx, dy = x1 - x0, y1 - y0
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


@pytest.mark.parametrize("difficulty", [0, 1, 2])
def test_direction_from_pixels(difficulty):
    for item in items("video_direction", difficulty):
        options = item.metadata["options"]
        assert sorted(options) == ["down", "left", "right", "up"]
        assert item.answer == LETTERS[options.index(pixel_direction(item))]
        lines = item.prompt.splitlines()
        assert lines[1:] == [f"{letter}. {opt}" for letter, opt in zip(LETTERS, options)]
        q = item.metadata["scene"]["question"]
        assert lines[0] == f"Which way does the {q['colour']} {q['kind']} move?"
        # the grounded rationale names the shape's 3x3 cell in the first and the last frame, read here from pixels
        head, places = item.metadata["rationale"].split(": ")
        assert head == f"{q['colour']} {q['kind']}"
        said = places.split(", then ")
        for frame, cell in zip((item.video.frames[0], item.video.frames[-1]), said, strict=True):
            assert cell in cells_near(frame, COLOURS[q["colour"]]), (cell, item.id)
        if difficulty == 0:  # easy: one big shape, long move, nothing else
            assert options == ["left", "right", "up", "down"]
            assert frame_colours(item.video.frames[0]) == {WHITE, COLOURS[q["colour"]]}
            rgb = COLOURS[q["colour"]]
            (x0, y0), (x1, y1) = centroid(item.video.frames[0], rgb), centroid(item.video.frames[-1], rgb)
            assert max(abs(x1 - x0), abs(y1 - y0)) >= 45


def test_direction_answers_cover_all_options():
    answers = {item.answer for d in range(3) for item in items("video_direction", d)}
    assert answers == set(LETTERS)


# --------------------------------------------------------------------------- video_bounce_count


def simulate_bounces(scene: dict, dt: float = 1e-3) -> int:
    """Step the ball through [0, duration], reflecting at the walls, and count reflections."""
    ball = scene["ball"]
    lo = scene["wall"] + ball["radius"]
    hi = scene["width"] - 1 - scene["wall"] - ball["radius"]
    x, v, bounces = float(ball["x0"]), float(ball["vx"]), 0
    for _ in range(int(round(scene["duration"] / dt))):
        x += v * dt
        if x > hi:
            x, v, bounces = 2 * hi - x, -v, bounces + 1
        elif x < lo:
            x, v, bounces = 2 * lo - x, -v, bounces + 1
    return bounces


def pixel_turns(item) -> int:
    """Sign changes of the ball's frame-to-frame x displacement (pixel centroids; ~0 steps ignored)."""
    rgb = COLOURS[item.metadata["scene"]["question"]["colour"]]
    xs = [centroid(f, rgb)[0] for f in item.video.frames]
    signs = [np.sign(b - a) for a, b in zip(xs, xs[1:]) if abs(b - a) > 0.5]
    return sum(1 for a, b in zip(signs, signs[1:]) if a != b)


@pytest.mark.parametrize("difficulty", [0, 1, 2])
def test_bounce_count_by_simulation_and_pixels(difficulty):
    counts = set()
    for item in items("video_bounce_count", difficulty):
        scene = item.metadata["scene"]
        assert item.answer == str(simulate_bounces(scene))
        assert item.answer == str(pixel_turns(item))
        counts.add(int(item.answer))
        rgb = COLOURS[scene["question"]["colour"]]
        ys = {round(centroid(f, rgb)[1]) for f in item.video.frames}
        assert len(ys) == 1  # horizontal motion only
        assert not re.search(r"\d", item.metadata["rationale"])
        assert item.prompt == f"How many times does the {scene['question']['colour']} ball bounce off a wall?"
    assert counts == set(range(4 if difficulty == 0 else 5))


def test_bounce_distractors_do_not_share_the_ball_colour():
    for d in (1, 2):
        for item in items("video_bounce_count", d, n=10):
            scene = item.metadata["scene"]
            others = [o["colour"] for o in scene["objects"] + scene["other_balls"]]
            assert len(others) == 1 and scene["question"]["colour"] not in others


# --------------------------------------------------------------------------- video_temporal_ground


@pytest.mark.parametrize("difficulty", [0, 1, 2])
def test_temporal_interval_from_pixels(difficulty):
    for item in items("video_temporal_ground", difficulty):
        scene = item.metadata["scene"]
        fps, rgb = scene["fps"], COLOURS[scene["question"]["colour"]]
        shown = [k for k, f in enumerate(item.video.frames) if mask(f, rgb).any()]
        assert shown == list(range(shown[0], shown[-1] + 1))  # one contiguous run
        expected = [shown[0] / fps, (shown[-1] + 1) / fps]
        assert item.answer == expected and all(isinstance(v, float) for v in item.answer)
        assert item.answer != [0.0, scene["duration"]]
        assert item.answer[1] - item.answer[0] >= (1.0 if difficulty < 2 else 0.5)
        assert all(2 * v == int(2 * v) for v in item.answer)  # whole or half seconds
        assert not re.search(r"\d", item.metadata["rationale"])
        assert set(item.metadata) == {"scene", "difficulty", "image_size", "rationale"}
        if difficulty == 0:
            assert all(frame_colours(f) <= {WHITE, rgb} for f in item.video.frames)


# --------------------------------------------------------------------------- dataset on disk


def test_write_dataset_round_trip(tmp_path):
    path = write_dataset("video_direction", 4, tmp_path, seed=0)
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == [
        f"video_direction-d0-s0-{i:06d}.mp4" for i in range(4)]
    samples = load_samples(path, check_images=True)
    assert len(samples) == 4
    for sample in samples:
        assert sample.modalities == ("video",) and sample.reward == "choice"
        clip = load_video(sample.videos[0], fps=2.0, max_frames=16)
        assert len(clip.frames) == 8 and clip.size == (112, 112)
        assert clip.timestamps == pytest.approx([k / 2 for k in range(8)], abs=1e-3)
        rgb = COLOURS[sample.metadata["scene"]["question"]["colour"]]
        (x0, y0), (x1, y1) = centroid(clip.frames[0], rgb, tol=40), centroid(clip.frames[-1], rgb, tol=40)
        dx, dy = x1 - x0, y1 - y0
        way = ("right" if dx > 0 else "left") if abs(dx) >= abs(dy) else ("down" if dy > 0 else "up")
        assert sample.answer == LETTERS[sample.metadata["options"].index(way)]
