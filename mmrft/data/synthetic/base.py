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
import os
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

from PIL import Image

from mmrft import atomic
from mmrft.data.clips import AudioClip, VideoClip
from mmrft.registry import Registry

from .scene import BACKGROUND, BASE_IMAGE_SIZE, blank_image, draw_objects

MODALITIES = ("image", "multi_image", "video", "audio")

__all__ = [
    "SYNTHETIC_TASKS",
    "SyntheticItem",
    "SyntheticTask",
    "answer_text",
    "generate_items",
    "get_task",
    "item_rng",
    "item_to_row",
    "register_task",
    "save_item_media",
    "task_corpus",
    "tokenizer_corpus",
    "TOKENIZER_TASKS",
    "write_dataset",
]


# --------------------------------------------------------------------------- item


@dataclass
class SyntheticItem:
    """One generated example.

    ``metadata`` always holds ``scene`` (JSON description of everything drawn),
    ``difficulty``, ``image_size`` (``[w, h]``) and ``rationale`` (a short
    reasoning hint that never contains the answer), plus task-specific keys.

    The media depend on the task's ``modality``: ``image`` (one picture),
    ``images`` (``multi_image``: several, referenced in order by the prompt),
    ``video`` (a :class:`~mmrft.data.clips.VideoClip`) or ``audio`` (an
    :class:`~mmrft.data.clips.AudioClip`). Unused ones are ``None`` / empty.
    """

    id: str
    prompt: str
    image: Image.Image | None
    answer: str | list[int] | list[float]
    task: str
    reward: str
    metadata: dict = field(default_factory=dict)
    images: list[Image.Image] = field(default_factory=list)
    video: VideoClip | None = None
    audio: AudioClip | None = None


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
    # what :meth:`render` returns: image -> PIL image, multi_image -> list of PIL images, video -> VideoClip,
    # audio -> AudioClip
    modality: str = "image"
    # the canvas size when none is asked for (`write_dataset`, `mmrft synth`); sizes in a scene scale with it
    default_image_size: int = BASE_IMAGE_SIZE

    # -- to implement ---------------------------------------------------------
    def sample_scene(self, rng: random.Random, difficulty: int, image_size: int) -> dict:
        raise NotImplementedError

    def render(self, scene: dict, image_size: int) -> Image.Image | list[Image.Image] | VideoClip | AudioClip:
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
        image_size: int | None = None,
        *,
        render: bool = True,
    ) -> SyntheticItem:
        """Generate one item (`image_size` None: `default_image_size`). With ``render=False`` an image task's image
        is a 1x1 placeholder and other modalities' media are left empty (for text-only uses such as tokenizer
        corpora)."""
        self.check_difficulty(difficulty)
        image_size = self.default_image_size if image_size is None else image_size
        scene = self.sample_scene(rng, difficulty, image_size)
        media: dict = {"image": None}
        if self.modality == "image":
            media["image"] = self.render(scene, image_size) if render else Image.new("RGB", (1, 1), BACKGROUND)
        elif render:
            rendered = self.render(scene, image_size)
            key = {"multi_image": "images", "video": "video", "audio": "audio"}[self.modality]
            media[key] = list(rendered) if key == "images" else rendered
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
            answer=self.solve(scene),
            task=self.name,
            reward=self.reward,
            metadata=metadata,
            **media,
        )

    def __repr__(self) -> str:
        return f"<SyntheticTask {self.name} reward={self.reward} difficulties={list(self.difficulties)}>"


# ------------------------------------------------------------------- registry

SYNTHETIC_TASKS: Registry[SyntheticTask] = Registry("synthetic task")


def register_task(name: str):
    """Class decorator: instantiate and register a :class:`SyntheticTask` under `name`."""

    def deco(cls):
        inst = cls()
        inst.name = name
        SYNTHETIC_TASKS.add(name, inst)
        return cls

    return deco


def get_task(name: str) -> SyntheticTask:
    """`SYNTHETIC_TASKS[name]` (a KeyError lists the known tasks)."""
    return SYNTHETIC_TASKS[name]


# ------------------------------------------------------------------ generation


def item_rng(seed: int, task: str, index: int, difficulty: int = 0) -> random.Random:
    """Per-item RNG: str seeds are hashed with SHA-512, stable across processes."""
    return random.Random(f"mmrft-synthetic/{seed}/{task}/{difficulty}/{index}")


def _generate_one(
    task: str, index: int, seed: int, difficulty: int, image_size: int | None, render: bool = True
) -> SyntheticItem:
    t = get_task(task)
    image_size = t.default_image_size if image_size is None else image_size
    item = t.generate(item_rng(seed, task, index, difficulty), index, difficulty, image_size, render=render)
    return replace(item, id=f"{task}-d{difficulty}-s{seed}-{index:06d}")


def generate_items(
    task: str, n: int, seed: int, difficulty: int = 0, image_size: int | None = None
) -> list[SyntheticItem]:
    """``n`` deterministic items; item ``i`` depends only on (task, seed, difficulty, image_size, i). `image_size`
    None: the task's `default_image_size`."""
    get_task(task).check_difficulty(difficulty)
    return [_generate_one(task, i, seed, difficulty, image_size) for i in range(n)]


def item_to_row(item: SyntheticItem, image_relpath: str | list[str] = (), *, videos: list[str] = (),
                audios: list[str] = ()) -> dict:
    """The dataset row of `item` whose media were saved at the given paths (relative to the data file)."""
    images = [image_relpath] if isinstance(image_relpath, str) else list(image_relpath)
    row = {
        "id": item.id,
        "prompt": item.prompt,
        "images": images,
        "answer": item.answer,
        "task": item.task,
        "reward": item.reward,
        "metadata": item.metadata,
    }
    if videos:
        row["videos"] = list(videos)
    if audios:
        row["audios"] = list(audios)
    return row


def save_item_media(item: SyntheticItem, out: Path) -> dict:
    """Write `item`'s media under `out` (images/*.png, videos/*.mp4, audio/*.wav); returns item_to_row's
    keyword arguments (paths relative to `out`)."""
    if item.video is not None:
        from mmrft.data.video_write import write_video

        rel = f"videos/{item.id}.mp4"
        (out / "videos").mkdir(parents=True, exist_ok=True)
        write_video(item.video, out / rel)
        return {"videos": [rel]}
    if item.audio is not None:
        from mmrft.data.audio import write_audio

        rel = f"audio/{item.id}.wav"
        (out / "audio").mkdir(parents=True, exist_ok=True)
        write_audio(item.audio, out / rel)
        return {"audios": [rel]}
    (out / "images").mkdir(parents=True, exist_ok=True)
    pictures = item.images if item.images else [item.image]
    rels = []
    for k, im in enumerate(pictures):
        rel = f"images/{item.id}.png" if len(pictures) == 1 and not item.images else f"images/{item.id}_{k}.png"
        im.save(out / rel, format="PNG")
        rels.append(rel)
    return {"image_relpath": rels}


def write_dataset(
    task: str | Sequence[str],
    n: int,
    out_dir: str | os.PathLike,
    seed: int,
    difficulty: int = 0,
    image_size: int | None = None,
) -> Path:
    """Write ``out_dir/data.jsonl`` and the media (``images/<id>.png``, ``images/<id>_<k>.png`` for multi-image
    tasks, ``videos/<id>.mp4``, ``audio/<id>.wav``); return the jsonl path.

    ``task`` may be a list of task names: items are then interleaved
    round-robin (item ``j`` is item ``j // k`` of task ``j % k``). `image_size` None: each task's
    `default_image_size`. The jsonl is written atomically (`mmrft.atomic`).
    """
    tasks = [task] if isinstance(task, str) else list(task)
    if not tasks:
        raise ValueError("write_dataset: empty task list")
    for t in tasks:
        get_task(t).check_difficulty(difficulty)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for j in range(n):
        name = tasks[j % len(tasks)]
        item = _generate_one(name, j // len(tasks), seed, difficulty, image_size)
        rows.append(item_to_row(item, **save_item_media(item, out)))
    path = out / "data.jsonl"
    atomic.write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return path


def answer_text(answer: str | list[int]) -> str:
    """Canonical text of an answer (boxes as ``[x1, y1, x2, y2]``)."""
    return answer if isinstance(answer, str) else json.dumps(answer)


# The tasks whose text the tiny models' tokenizers are trained on (`tokenizer_corpus`). Fixed and versioned: a tiny
# model is its tokenizer as much as its weights, so a task added to the package must not silently change every tiny
# model (and the demo's numbers) -- adding one here is a deliberate change, to be re-measured. Text of tasks not
# listed is still encoded (byte-level BPE), in more tokens.
TOKENIZER_TASKS = ("arithmetic", "audio_count_beeps", "audio_higher_tone", "audio_pause_length", "compare", "count",
                   "ground", "multi_image_change", "multi_image_more", "video_bounce_count", "video_direction",
                   "video_temporal_ground")


def task_corpus(n_per_task: int = 200, seed: int = 0, tasks: Sequence[str] | None = None) -> list[str]:
    """Prompts, answers, rationales (and options) of `tasks` (default: every registered task) at every difficulty.

    Images are not rendered. Intended for training a small tokenizer that
    covers the tasks' vocabulary.
    """
    texts: list[str] = []
    for name in sorted(SYNTHETIC_TASKS if tasks is None else tasks):
        t = SYNTHETIC_TASKS[name]
        for d in t.difficulties:
            for i in range(n_per_task):
                item = _generate_one(name, i, seed, d, None, render=False)
                texts.append(item.prompt)
                texts.append(answer_text(item.answer))
                texts.append(item.metadata["rationale"])
                for opt in item.metadata.get("options", []):
                    texts.append(opt)
    return texts


def tokenizer_corpus(n_per_task: int = 200) -> list[str]:
    """The text the tiny models' tokenizers are trained on: the `TOKENIZER_TASKS` (seed 0) and the prompt formats'
    instructions. The same for every run of a version of mmrft, whatever tasks are registered."""
    from mmrft.data.prompts import prompt_corpus

    return task_corpus(n_per_task, seed=0, tasks=TOKENIZER_TASKS) + prompt_corpus()
