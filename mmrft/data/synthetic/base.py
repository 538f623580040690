"""Core machinery for procedural multimodal tasks with verifiable answers.

Every task samples a JSON-serialisable *scene* (everything that is drawn), renders
it with PIL onto a small white RGB canvas, asks one short English question about
it and derives the answer from the scene alone (:meth:`SyntheticTask.solve`).
Generation is deterministic: item ``i`` of ``(task, seed, difficulty,
image_size)`` is produced by its own RNG, so it does not depend on how many
items are requested.
"""

from __future__ import annotations

import json
import math
import os
import random
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "BASE_IMAGE_SIZE",
    "COLOURS",
    "SHAPE_KINDS",
    "SYNTHETIC_TASKS",
    "SyntheticItem",
    "SyntheticTask",
    "area_of",
    "bbox_of",
    "draw_objects",
    "generate_items",
    "get_task",
    "item_rng",
    "item_to_row",
    "load_font",
    "make_object",
    "place_objects",
    "plural",
    "register_task",
    "scale",
    "task_corpus",
    "write_dataset",
]

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


# --------------------------------------------------------------------------- item


@dataclass
class SyntheticItem:
    """One generated example.

    ``metadata`` always holds ``scene`` (JSON description of everything drawn),
    ``difficulty``, ``image_size`` (``[w, h]``) and ``rationale`` (a short
    reasoning hint that never contains the answer), plus task-specific keys.
    """

    id: str
    prompt: str
    image: Image.Image
    answer: str | list[int]
    task: str
    reward: str
    metadata: dict = field(default_factory=dict)


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


# ------------------------------------------------------------------- task base


class SyntheticTask:
    """Base class for a procedural task.

    Subclasses set ``name``, ``reward`` (a rewards-registry name) and
    ``difficulties`` (``range``, 0 = easiest) and implement
    :meth:`sample_scene`, :meth:`render`, :meth:`prompt`, :meth:`rationale`
    and :meth:`solve`. :meth:`generate` ties them together.
    """

    name: str = ""
    reward: str = ""
    difficulties: range = range(1)

    # -- to implement ---------------------------------------------------------
    def sample_scene(self, rng: random.Random, difficulty: int, image_size: int) -> dict:
        raise NotImplementedError

    def render(self, scene: dict, image_size: int) -> Image.Image:
        return draw_objects(blank_image(image_size), scene["objects"])

    def prompt(self, scene: dict) -> str:
        raise NotImplementedError

    def rationale(self, scene: dict) -> str:
        raise NotImplementedError

    def solve(self, scene: dict) -> str | list[int]:
        """Re-derive the answer from the scene description alone."""
        raise NotImplementedError

    def extra_metadata(self, scene: dict, image_size: int) -> dict:
        return {}

    # -- driver ---------------------------------------------------------------
    def check_difficulty(self, difficulty: int) -> None:
        if difficulty not in self.difficulties:
            raise ValueError(
                f"task {self.name!r}: difficulty {difficulty} outside "
                f"{self.difficulties.start}..{self.difficulties.stop - 1}"
            )

    def generate(
        self,
        rng: random.Random,
        index: int,
        difficulty: int = 0,
        image_size: int = BASE_IMAGE_SIZE,
        *,
        render: bool = True,
    ) -> SyntheticItem:
        """Generate one item. With ``render=False`` the image is a 1x1 placeholder."""
        self.check_difficulty(difficulty)
        scene = self.sample_scene(rng, difficulty, image_size)
        image = self.render(scene, image_size) if render else Image.new("RGB", (1, 1), BACKGROUND)
        metadata = {
            "scene": scene,
            "difficulty": difficulty,
            "image_size": [image_size, image_size],
            "rationale": self.rationale(scene),
        }
        metadata.update(self.extra_metadata(scene, image_size))
        return SyntheticItem(
            id=f"{self.name}-d{difficulty}-{index:06d}",
            prompt=self.prompt(scene),
            image=image,
            answer=self.solve(scene),
            task=self.name,
            reward=self.reward,
            metadata=metadata,
        )

    def __repr__(self) -> str:
        return f"<SyntheticTask {self.name} reward={self.reward} difficulties={list(self.difficulties)}>"


# ------------------------------------------------------------------- registry

SYNTHETIC_TASKS: dict[str, SyntheticTask] = {}


def register_task(name: str):
    """Class decorator: instantiate and register a :class:`SyntheticTask`."""

    def deco(cls):
        inst = cls()
        inst.name = name
        SYNTHETIC_TASKS[name] = inst
        return cls

    return deco


def get_task(name: str) -> SyntheticTask:
    try:
        return SYNTHETIC_TASKS[name]
    except KeyError:
        raise KeyError(
            f"unknown synthetic task {name!r}; known: {sorted(SYNTHETIC_TASKS)}"
        ) from None


# ------------------------------------------------------------------ generation


def item_rng(seed: int, task: str, index: int, difficulty: int = 0) -> random.Random:
    """Per-item RNG: str seeds are hashed with SHA-512, stable across processes."""
    return random.Random(f"mmrft-synthetic/{seed}/{task}/{difficulty}/{index}")


def _generate_one(
    task: str, index: int, seed: int, difficulty: int, image_size: int, render: bool = True
) -> SyntheticItem:
    t = get_task(task)
    item = t.generate(item_rng(seed, task, index, difficulty), index, difficulty, image_size, render=render)
    return replace(item, id=f"{task}-d{difficulty}-s{seed}-{index:06d}")


def generate_items(
    task: str, n: int, seed: int, difficulty: int = 0, image_size: int = BASE_IMAGE_SIZE
) -> list[SyntheticItem]:
    """``n`` deterministic items; item ``i`` depends only on (task, seed, difficulty, image_size, i)."""
    get_task(task).check_difficulty(difficulty)
    return [_generate_one(task, i, seed, difficulty, image_size) for i in range(n)]


def item_to_row(item: SyntheticItem, image_relpath: str) -> dict:
    return {
        "id": item.id,
        "prompt": item.prompt,
        "images": [image_relpath],
        "answer": item.answer,
        "task": item.task,
        "reward": item.reward,
        "metadata": item.metadata,
    }


def write_dataset(
    task: str | Sequence[str],
    n: int,
    out_dir: str | os.PathLike,
    seed: int,
    difficulty: int = 0,
    image_size: int = BASE_IMAGE_SIZE,
) -> Path:
    """Write ``out_dir/data.jsonl`` and ``out_dir/images/<id>.png``; return the jsonl path.

    ``task`` may be a list of task names: items are then interleaved
    round-robin (item ``j`` is item ``j // k`` of task ``j % k``). The jsonl is
    written atomically (temp file in the same directory + ``os.replace``).
    """
    tasks = [task] if isinstance(task, str) else list(task)
    if not tasks:
        raise ValueError("write_dataset: empty task list")
    for t in tasks:
        get_task(t).check_difficulty(difficulty)
    out = Path(out_dir)
    img_dir = out / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for j in range(n):
        name = tasks[j % len(tasks)]
        item = _generate_one(name, j // len(tasks), seed, difficulty, image_size)
        rel = f"images/{item.id}.png"
        item.image.save(out / rel, format="PNG")
        rows.append(item_to_row(item, rel))
    path = out / "data.jsonl"
    fd, tmp = tempfile.mkstemp(prefix=".data.jsonl.", suffix=".tmp", dir=out)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def answer_text(answer: str | list[int]) -> str:
    """Canonical text of an answer (boxes as ``[x1, y1, x2, y2]``)."""
    return answer if isinstance(answer, str) else json.dumps(answer)


def task_corpus(n_per_task: int = 200, seed: int = 0) -> list[str]:
    """Prompts, answers, rationales (and options) of every task at every difficulty.

    Images are not rendered. Intended for training a small tokenizer that
    covers the tasks' vocabulary.
    """
    texts: list[str] = []
    for name in sorted(SYNTHETIC_TASKS):
        t = SYNTHETIC_TASKS[name]
        for d in t.difficulties:
            for i in range(n_per_task):
                item = _generate_one(name, i, seed, d, BASE_IMAGE_SIZE, render=False)
                texts.append(item.prompt)
                texts.append(answer_text(item.answer))
                texts.append(item.metadata["rationale"])
                for opt in item.metadata.get("options", []):
                    texts.append(opt)
    return texts
