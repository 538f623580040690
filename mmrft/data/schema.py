"""The dataset schema: one :class:`Sample` per row.

| field      | type                                   | required | default     |
|------------|----------------------------------------|----------|-------------|
| `id`       | str (ints are converted)               | yes      |             |
| `prompt`   | non-empty str                          | yes      |             |
| `images`   | list of paths / `{"bytes", "path"}`    | no       | `[]`        |
| `videos`   | list of video refs (below)             | no       | `[]`        |
| `audios`   | list of paths / `{"bytes", "path"}`    | no       | `[]`        |
| `answer`   | str, int, float, or list of numbers    | yes      |             |
| `task`     | non-empty str                          | no       | `"default"` |
| `reward`   | str, or dict name -> weight            | no       | `None`      |
| `metadata` | dict                                   | no       | `{}`        |
| `trajectory` | list of turns after the prompt (below) | no     | `[]`        |

Unknown top-level fields are kept in `metadata` (an explicit `metadata` key wins on a clash).
Image paths are resolved against the data file's directory; embedded images (the layout of the
HF `datasets.Image` feature) are kept as `{"bytes": b"...", "path": str | None}` dicts.

A video ref is a video file path (mp4, webm, mkv, mov, avi; decoded with PyAV), a directory of frame images
(sorted by name), or a dict `{"path": dir_or_file, "fps": float}` / `{"frames": [paths...], "fps": float}`; `fps`
is the frame rate of a frame directory/list (default 1 frame per second). Audio refs are paths to anything
`soundfile` reads (wav, flac, ogg, ...) or embedded `{"bytes", "path"}` dicts (the HF `datasets.Audio` layout).
The prompt refers to the media in order: images first, then videos, then audio clips.

`trajectory` is a supervised multi-turn answer for SFT cold start of tool use: the turns after the prompt, each
`{"role": "assistant", "content": str}` or `{"role": "tool", "content": str, "images": [image refs]}`, starting and
ending with an assistant turn and alternating (an assistant turn that calls a tool is answered by a tool turn).
SFT learns the assistant turns and reads the tool turns (their images are resolved like `images`), e.g.

    "trajectory": [
      {"role": "assistant", "content": "<think>too small to read</think><tool_call>{\"name\": \"zoom_in\", \"arguments\": {\"bbox_2d\": [0, 0, 500, 500]}}</tool_call>"},
      {"role": "tool", "content": "Zoomed in on image 0; this is image 1.", "images": ["crops/q-1.png"]},
      {"role": "assistant", "content": "<think>the digit is 7</think><answer>7</answer>"}
    ]
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from mmrft.errors import DataError

ImageRef = Union[str, dict]
VideoRef = Union[str, dict]
AudioRef = Union[str, dict]
Answer = Union[str, int, float, list]

FIELDS = ("id", "prompt", "images", "videos", "audios", "answer", "task", "reward", "metadata", "trajectory")
TURN_ROLES = ("assistant", "tool")
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
    videos: list[VideoRef] = field(default_factory=list)
    audios: list[AudioRef] = field(default_factory=list)
    task: str = "default"
    reward: str | dict[str, float] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    trajectory: list[dict[str, Any]] = field(default_factory=list)  # supervised turns after the prompt (SFT)
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

        base = Path(base_dir)
        images = _parse_images(row.get("images"), base, where)
        videos = _parse_videos(row.get("videos"), base, where)
        audios = _parse_images(row.get("audios"), base, where, name="audios", kind="audio file")

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
        trajectory = _parse_trajectory(row.get("trajectory"), base, where)

        return cls(id=sid, prompt=prompt, answer=answer, images=images, videos=videos, audios=audios, task=task,
                   reward=reward, metadata=metadata, trajectory=trajectory, source=where)

    def reward_view(self) -> dict[str, Any]:
        """The plain dict reward functions receive (copies: rewards cannot mutate the sample)."""
        answer = list(self.answer) if isinstance(self.answer, list) else self.answer
        return {"id": self.id, "answer": answer, "task": self.task, "metadata": dict(self.metadata)}

    @property
    def modalities(self) -> tuple[str, ...]:
        """The media kinds this sample carries, in prompt order: a subset of ("image", "video", "audio")."""
        kinds = (("image", self.images), ("video", self.videos), ("audio", self.audios))
        return tuple(kind for kind, refs in kinds if refs)

    def to_row(self, base_dir: Path | str | None = None) -> dict[str, Any]:
        """Inverse of :meth:`from_row`. With `base_dir`, media paths are written relative to it."""

        def rel(ref: Any) -> Any:
            if isinstance(ref, str) and base_dir is not None:
                return os.path.relpath(ref, base_dir)
            if isinstance(ref, dict):
                ref = dict(ref)
                if isinstance(ref.get("path"), str) and base_dir is not None and ref.get("bytes") is None:
                    ref["path"] = os.path.relpath(ref["path"], base_dir)
                if isinstance(ref.get("frames"), list):
                    ref["frames"] = [rel(f) for f in ref["frames"]]
            return ref

        row = {
            "id": self.id,
            "prompt": self.prompt,
            "images": [rel(ref) for ref in self.images],
            "answer": list(self.answer) if isinstance(self.answer, list) else self.answer,
            "task": self.task,
            "reward": dict(self.reward) if isinstance(self.reward, dict) else self.reward,
            "metadata": dict(self.metadata),
        }
        if self.videos:
            row["videos"] = [rel(ref) for ref in self.videos]
        if self.audios:
            row["audios"] = [rel(ref) for ref in self.audios]
        if self.trajectory:
            row["trajectory"] = [{**t, "images": [rel(ref) for ref in t["images"]]} if "images" in t else dict(t)
                                 for t in self.trajectory]
        return row


def _resolve_path(item: Any, base_dir: Path, prefix: str, kind: str) -> str:
    if not isinstance(item, str) or not item:
        raise DataError(f"{prefix}: expected a {kind} path, got {repr(item) if isinstance(item, str) else _type_name(item)}")
    if item.startswith(("http://", "https://")):
        raise DataError(f"{prefix}: remote URLs are not supported, download the file first: {item}")
    return os.path.abspath(os.path.join(base_dir, os.path.expanduser(item)))


def _as_list(value: Any, where: str, name: str, kind: str) -> list:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        hint = " (wrap a single path in a list)" if isinstance(value, (str, dict)) else ""
        raise DataError(f"{where}: field '{name}': expected a list of {kind} paths, got {_type_name(value)}{hint}")
    return list(value)


def _parse_images(value: Any, base_dir: Path, where: str, name: str = "images", kind: str = "image") -> list[ImageRef]:
    """Image (or audio) refs: paths resolved against `base_dir`, embedded `{"bytes", "path"}` dicts kept."""
    out: list[ImageRef] = []
    for i, item in enumerate(_as_list(value, where, name, kind)):
        prefix = f"{where}: field '{name}': item {i}"
        if isinstance(item, dict):
            data, path = item.get("bytes"), item.get("path")
            if data is not None:
                if not isinstance(data, (bytes, bytearray, memoryview)) or not len(data):
                    raise DataError(f"{prefix}: expected non-empty {kind} bytes, got {_type_name(data)}")
                out.append({"bytes": bytes(data), "path": path if isinstance(path, str) else None})
                continue
            item = path  # {"bytes": None, "path": "..."}: a plain path
        if not isinstance(item, str) or not item:
            raise DataError(f"{prefix}: expected an {kind} path or a {{'bytes': ..., 'path': ...}} dict, "
                            f"got {repr(item) if isinstance(item, str) else _type_name(item)}")
        out.append(_resolve_path(item, base_dir, prefix, kind))
    return out


def _parse_videos(value: Any, base_dir: Path, where: str) -> list[VideoRef]:
    """Video refs: a path (file or frame directory), or `{"path"|"frames": ..., "fps": float}`."""
    out: list[VideoRef] = []
    for i, item in enumerate(_as_list(value, where, "videos", "video")):
        prefix = f"{where}: field 'videos': item {i}"
        if isinstance(item, str):
            out.append(_resolve_path(item, base_dir, prefix, "video"))
            continue
        if not isinstance(item, dict):
            raise DataError(f"{prefix}: expected a video path or a {{'path'|'frames': ..., 'fps': ...}} dict, "
                            f"got {_type_name(item)}")
        ref: dict[str, Any] = {}
        fps = item.get("fps")
        if fps is not None:
            if not _is_number(fps) or fps <= 0:
                raise DataError(f"{prefix}: key 'fps': expected a positive number, got {fps!r}")
            ref["fps"] = float(fps)
        if item.get("frames") is not None:
            frames = item["frames"]
            if not isinstance(frames, (list, tuple)) or not frames:
                raise DataError(f"{prefix}: key 'frames': expected a non-empty list of image paths, "
                                f"got {_type_name(frames)}")
            ref["frames"] = [_resolve_path(f, base_dir, f"{prefix}: frame {j}", "frame image")
                             for j, f in enumerate(frames)]
        elif item.get("path") is not None:
            ref["path"] = _resolve_path(item["path"], base_dir, prefix, "video")
        else:
            raise DataError(f"{prefix}: a video dict needs 'path' (file or frame directory) or 'frames' (list of "
                            f"image paths), got keys {sorted(item)}")
        out.append(ref)
    return out


def _parse_trajectory(value: Any, base_dir: Path, where: str) -> list[dict[str, Any]]:
    """Supervised turns after the prompt: alternating assistant / tool turns, first and last an assistant turn."""
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise DataError(f"{where}: field 'trajectory': expected a list of turns, got {_type_name(value)}")
    turns: list[dict[str, Any]] = []
    for i, turn in enumerate(value):
        prefix = f"{where}: field 'trajectory': turn {i}"
        if not isinstance(turn, dict):
            raise DataError(f"{prefix}: expected an object with 'role' and 'content', got {_type_name(turn)}")
        role, content = turn.get("role"), turn.get("content")
        if role not in TURN_ROLES:
            raise DataError(f"{prefix}: key 'role': expected one of {', '.join(TURN_ROLES)}, got {role!r}")
        expected = TURN_ROLES[i % 2]
        if role != expected:
            raise DataError(f"{prefix}: expected {'an' if expected == 'assistant' else 'a'} {expected} turn (turns alternate, starting with an assistant "
                            f"turn), got {role!r}")
        if not isinstance(content, str) or (role == "assistant" and not content.strip()):
            raise DataError(f"{prefix}: key 'content': expected a non-empty string, got "
                            f"{repr(content) if isinstance(content, str) else _type_name(content)}")
        unknown = sorted(set(turn) - {"role", "content", "images"})
        if unknown:
            raise DataError(f"{prefix}: unknown keys {unknown} (expected role, content, images)")
        parsed: dict[str, Any] = {"role": role, "content": content}
        if turn.get("images") is not None:
            if role != "tool":
                raise DataError(f"{prefix}: key 'images': only tool turns return images")
            parsed["images"] = _parse_images(turn["images"], base_dir, prefix, name="images")
        turns.append(parsed)
    if turns and turns[-1]["role"] != "assistant":
        raise DataError(f"{where}: field 'trajectory': the last turn must be an assistant turn (the answer), got a "
                        f"{turns[-1]['role']} turn")
    return turns
