"""The dataset schema: one :class:`Sample` per row.

| field      | type                                   | required | default     |
|------------|----------------------------------------|----------|-------------|
| `id`       | str (ints are converted)               | yes      |             |
| `prompt`   | non-empty str                          | yes      |             |
| `images`   | list of paths / `{"bytes", "path"}`    | no       | `[]`        |
| `answer`   | str, int, float, or list of numbers    | yes      |             |
| `task`     | non-empty str                          | no       | `"default"` |
| `reward`   | str, or dict name -> weight            | no       | `None`      |
| `metadata` | dict                                   | no       | `{}`        |

Unknown top-level fields are kept in `metadata` (an explicit `metadata` key wins on a clash).
Image paths are resolved against the data file's directory; embedded images (the layout of the
HF `datasets.Image` feature) are kept as `{"bytes": b"...", "path": str | None}` dicts.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from mmrft.errors import DataError

ImageRef = Union[str, dict]
Answer = Union[str, int, float, list]

FIELDS = ("id", "prompt", "images", "answer", "task", "reward", "metadata")
REQUIRED = ("id", "prompt", "answer")


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _as_number(value: Any) -> int | float:
    return int(value) if isinstance(value, numbers.Integral) else float(value)


@dataclass
class Sample:
    id: str
    prompt: str
    answer: Answer
    images: list[ImageRef] = field(default_factory=list)
    task: str = "default"
    reward: str | dict[str, float] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = field(default="", compare=False)  # "file:line" / "file:row N", for messages

    @classmethod
    def from_row(cls, row: Any, *, base_dir: Path | str, where: str) -> Sample:
        """Validate one raw row and build a Sample; raise DataError naming `where` and the field."""
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object with fields {list(FIELDS)}, got {_type_name(row)}")

        def bad(name: str, expected: str, value: Any = None, *, got: str | None = None) -> DataError:
            return DataError(f"{where}: field '{name}': expected {expected}, got {got or _type_name(value)}")

        for name in REQUIRED:
            if name not in row:
                raise DataError(f"{where}: missing required field '{name}' (present fields: {sorted(row)})")
            if row[name] is None:
                raise DataError(f"{where}: field '{name}': required, got null")

        sid = row["id"]
        if isinstance(sid, numbers.Integral) and not isinstance(sid, bool):
            sid = str(int(sid))
        if not isinstance(sid, str) or not sid:
            raise bad("id", "a non-empty string or an int", sid, got=repr(sid) if isinstance(sid, str) else None)

        prompt = row["prompt"]
        if not isinstance(prompt, str) or not prompt.strip():
            raise bad("prompt", "a non-empty string", prompt, got="an empty string" if isinstance(prompt, str) else None)

        answer = row["answer"]
        if isinstance(answer, (list, tuple)):
            if not all(_is_number(x) for x in answer):
                kinds = sorted({_type_name(x) for x in answer if not _is_number(x)})
                raise bad("answer", "a list of numbers", got=f"a list containing {', '.join(kinds)}")
            answer = [_as_number(x) for x in answer]
        elif _is_number(answer):
            answer = _as_number(answer)
        elif not isinstance(answer, str):
            raise bad("answer", "a string, int, float or list of numbers", answer)

        images = _parse_images(row.get("images"), Path(base_dir), where)

        task = row.get("task")
        if task is None:
            task = "default"
        elif not isinstance(task, str) or not task:
            raise bad("task", "a non-empty string", task, got=repr(task) if isinstance(task, str) else None)

        reward = row.get("reward")
        if isinstance(reward, dict):
            # parquet structs fill keys missing from a row with null: drop those
            reward = {k: v for k, v in reward.items() if v is not None}
            for k, v in reward.items():
                if not isinstance(k, str) or not _is_number(v):
                    raise bad("reward", "a dict of reward name -> numeric weight",
                              got=f"entry {k!r}: {_type_name(v)}")
            reward = {k: _as_number(v) for k, v in reward.items()} or None
        elif reward is not None and (not isinstance(reward, str) or not reward):
            raise bad("reward", "a reward name or a dict of name -> weight", reward,
                      got=repr(reward) if isinstance(reward, str) else None)

        metadata = row.get("metadata")
        if metadata is None:
            metadata = {}
        elif not isinstance(metadata, dict):
            raise bad("metadata", "a dict", metadata)
        extras = {k: v for k, v in row.items() if k not in FIELDS}
        metadata = {**extras, **metadata}

        return cls(id=sid, prompt=prompt, answer=answer, images=images, task=task,
                   reward=reward, metadata=metadata, source=where)

    def reward_view(self) -> dict[str, Any]:
        """The plain dict reward functions receive (copies: rewards cannot mutate the sample)."""
        answer = list(self.answer) if isinstance(self.answer, list) else self.answer
        return {"id": self.id, "answer": answer, "task": self.task, "metadata": dict(self.metadata)}

    def to_row(self, base_dir: Path | str | None = None) -> dict[str, Any]:
        """Inverse of :meth:`from_row`. With `base_dir`, image paths are written relative to it."""
        images: list[ImageRef] = []
        for ref in self.images:
            if isinstance(ref, str) and base_dir is not None:
                ref = os.path.relpath(ref, base_dir)
            elif isinstance(ref, dict):
                ref = dict(ref)
            images.append(ref)
        return {
            "id": self.id,
            "prompt": self.prompt,
            "images": images,
            "answer": list(self.answer) if isinstance(self.answer, list) else self.answer,
            "task": self.task,
            "reward": dict(self.reward) if isinstance(self.reward, dict) else self.reward,
            "metadata": dict(self.metadata),
        }


def _parse_images(value: Any, base_dir: Path, where: str) -> list[ImageRef]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        hint = " (wrap a single path in a list)" if isinstance(value, str) else ""
        raise DataError(f"{where}: field 'images': expected a list of image paths, got {_type_name(value)}{hint}")
    out: list[ImageRef] = []
    for i, item in enumerate(value):
        prefix = f"{where}: field 'images': item {i}"
        if isinstance(item, dict):
            data, path = item.get("bytes"), item.get("path")
            if data is not None:
                if not isinstance(data, (bytes, bytearray, memoryview)) or not len(data):
                    raise DataError(f"{prefix}: expected non-empty image bytes, got {_type_name(data)}")
                out.append({"bytes": bytes(data), "path": path if isinstance(path, str) else None})
                continue
            item = path  # {"bytes": None, "path": "..."}: a plain path
        if not isinstance(item, str) or not item:
            raise DataError(f"{prefix}: expected an image path or a {{'bytes': ..., 'path': ...}} dict, "
                            f"got {repr(item) if isinstance(item, str) else _type_name(item)}")
        if item.startswith(("http://", "https://")):
            raise DataError(f"{prefix}: remote image URLs are not supported, download the file first: {item}")
        out.append(os.path.abspath(os.path.join(base_dir, os.path.expanduser(item))))
    return out
