"""Reading the videos referenced by samples (writing: `mmrft.data.video_write`).

A video reference (:data:`mmrft.data.schema.VideoRef`) is

* a path to a video file (``.mp4``, ``.webm``, ``.mkv``, ``.mov``, ``.avi``; decoded with PyAV),
* a path to a directory of frame images (png/jpg/jpeg/webp/bmp, in name order: zero-pad the numbers),
* ``{"path": file_or_dir, "fps": float}``, or ``{"frames": [image paths], "fps": float}``.

Frame ``k`` of a frame directory or list is shown at ``k / fps`` seconds (``fps`` defaults to 1.0; it is ignored
for video files, whose own timestamps are used), so such a video lasts ``n_frames / fps`` seconds.

**Sampling** (:func:`sample_times`): a clip of duration ``D`` sampled at ``fps`` gets
``n = ceil(D * fps)`` frames (every ``k / fps`` inside ``[0, D)``), clamped to ``[min_frames, max_frames]`` and
rounded down to a multiple of ``frame_multiple`` (Qwen-VL needs an even count). The wanted times are then
``t_k = k * D / n``: exactly ``k / fps`` when nothing was clamped, otherwise ``n`` times spread uniformly over
the whole clip. For each wanted time the frame *on screen* at that time is taken (the last decoded frame whose
presentation time is at or before it, within 1 ms; the first frame for times before it). The clip's
``timestamps`` are the chosen frames' real times from the start of the source, so a model can be asked and graded
in seconds; when a source has fewer frames than wanted, a frame may be chosen twice (equal timestamps).

Files are decoded sequentially once (no seeking: the videos here are short) and decoding stops after the last
wanted frame. Every failure is a :class:`~mmrft.errors.DataError` that names the video and the reason.

"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterator

import av
from PIL import Image

from mmrft.data.clips import VideoClip
from mmrft.data.media import load_image, to_rgb
from mmrft.errors import DataError

__all__ = [
    "FRAME_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "check_video",
    "describe_video",
    "load_video",
    "probe_video",
    "sample_times",
]

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".mov", ".avi")
FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
DEFAULT_FRAME_DIR_FPS = 1.0
_TIME_TOL = 1e-3  # seconds: a frame at t + 1 ms still counts as "at or before t" (rounded container times)


# ------------------------------------------------------------------ references


def describe_video(ref: Any) -> str:
    """A short human-readable name for a video reference, for messages."""
    if isinstance(ref, dict):
        if isinstance(ref.get("frames"), (list, tuple)):
            frames = ref["frames"]
            first = f", first {frames[0]}" if frames else ""
            return f"frame list ({len(frames)} images{first})"
        if ref.get("path") is not None:
            return str(ref["path"])
        return repr(ref)
    return str(ref)


def _ref_fps(ref: Any) -> float:
    fps = ref.get("fps") if isinstance(ref, dict) else None
    if fps is None:
        return DEFAULT_FRAME_DIR_FPS
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
        raise DataError(f"invalid video reference {describe_video(ref)}: 'fps' must be a positive number, got {fps!r}")
    return float(fps)


def _resolve(ref: Any) -> tuple[str, Path | list[Path], float]:
    """Classify a reference: ``("file", path, 0)``, ``("dir", [frame paths], fps)`` or ``("list", [...], fps)``."""
    if isinstance(ref, dict):
        if ref.get("frames") is not None:
            frames = ref["frames"]
            if not isinstance(frames, (list, tuple)) or not frames:
                raise DataError(f"invalid video reference {ref!r}: 'frames' must be a non-empty list of image paths")
            return "list", [Path(f) for f in frames], _ref_fps(ref)
        path = ref.get("path")
        if path is None:
            raise DataError(f"invalid video reference {ref!r}: a video dict needs 'path' (file or frame directory) "
                            "or 'frames' (list of image paths)")
    else:
        path = ref
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise DataError(f"invalid video reference {ref!r}: expected a path or a "
                        "{'path'|'frames': ..., 'fps': ...} dict")
    p = Path(path)
    if not p.exists():
        raise DataError(f"video not found: {p}")
    if p.is_dir():
        frames = sorted((f for f in p.iterdir() if f.suffix.lower() in FRAME_EXTENSIONS and f.is_file()),
                        key=lambda f: f.name)
        if not frames:
            raise DataError(f"video frame directory has no frame images ({'/'.join(e[1:] for e in FRAME_EXTENSIONS)}):"
                            f" {p}")
        return "dir", frames, _ref_fps(ref)
    if not p.is_file():
        raise DataError(f"video path is not a file or a directory: {p}")
    return "file", p, 0.0


# ------------------------------------------------------------------ video files


def _open_container(path: Path) -> Any:
    try:
        return av.open(str(path))
    except Exception as e:  # PyAV raises InvalidDataError, FFmpegError subclasses, OSError, ...
        raise DataError(f"not a readable video (unknown format or corrupt): {path}: {e or type(e).__name__}") from None


def _video_stream(container: Any, path: Path) -> Any:
    if not container.streams.video:
        raise DataError(f"no video stream in {path}")
    return container.streams.video[0]


def _stream_info(container: Any, stream: Any) -> tuple[float, int, tuple[int, int]]:
    """(duration, frame count, size) from the headers; 0 where unknown."""
    duration = 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    if duration <= 0 and container.duration is not None:
        duration = container.duration / av.time_base
    frames = int(stream.frames or 0)
    rate = stream.average_rate or stream.guessed_rate
    if frames <= 0 and duration > 0 and rate:
        frames = int(round(duration * float(rate)))
    ctx = stream.codec_context
    return max(duration, 0.0), frames, (int(ctx.width), int(ctx.height))


def _origin(stream: Any) -> float:
    if stream.start_time is not None and stream.time_base is not None:
        return float(stream.start_time * stream.time_base)
    return 0.0


def _decoded(container: Any, stream: Any, path: Path) -> Iterator[tuple[float, Any]]:
    """(seconds from the stream start, av.VideoFrame) in presentation order; corrupt data -> DataError."""
    origin = _origin(stream)
    rate = float(stream.average_rate or stream.guessed_rate or 0) or None
    try:
        for i, frame in enumerate(container.decode(stream)):
            if frame.time is not None:
                t = max(0.0, float(frame.time) - origin)
            else:
                t = i / rate if rate else float(i)
            yield t, frame
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"corrupt video (decoding failed): {path}: {e or type(e).__name__}") from None


def _probe_file(path: Path) -> tuple[float, int, tuple[int, int]]:
    """Header info, or one full decode when the headers carry no duration (e.g. raw streams)."""
    with _open_container(path) as container:
        stream = _video_stream(container, path)
        duration, frames, size = _stream_info(container, stream)
        if duration > 0 and frames > 0:
            return duration, frames, size
        times = [t for t, _ in _decoded(container, stream, path)]
    if not times:
        raise DataError(f"video has no frames: {path}")
    step = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else 1.0
    return max(duration, times[-1] + step), len(times), size


# ------------------------------------------------------------------ public API


def probe_video(ref: Any) -> tuple[float, int, tuple[int, int]]:
    """``(duration in seconds, frame count, (width, height))`` from the container headers (frame directories:
    the number of images and the first image's size); decodes everything only when the headers carry no
    duration."""
    kind, target, fps = _resolve(ref)
    if kind == "file":
        return _probe_file(target)  # type: ignore[arg-type]
    frames: list[Path] = target  # type: ignore[assignment]
    first = frames[0]
    if not first.is_file():
        raise DataError(f"frame image not found: {first} (of {describe_video(ref)})")
    try:
        with Image.open(first) as im:
            size = im.size
    except Exception as e:
        raise DataError(f"not a readable frame image: {first} (of {describe_video(ref)}): {e}") from None
    return len(frames) / fps, len(frames), size


def check_video(ref: Any, *, max_seconds: float | None = None) -> float:
    """Validate a video reference cheaply and return its duration in seconds.

    Raises DataError when it is missing, not a file or directory, unreadable, has no video stream, no frames,
    or lasts longer than `max_seconds`. For files the first frame is decoded (catches corrupt streams whose
    headers parse); frame lists are checked to exist.
    """
    kind, target, _ = _resolve(ref)
    if kind == "file":
        path: Path = target  # type: ignore[assignment]
        duration, frames, _ = _probe_file(path)
        with _open_container(path) as container:
            if next(_decoded(container, _video_stream(container, path), path), None) is None:
                raise DataError(f"video has no frames: {path}")
    else:
        for f in target:  # type: ignore[union-attr]
            if not f.is_file():
                raise DataError(f"frame image not found: {f} (of {describe_video(ref)})")
        duration, frames, _ = probe_video(ref)
    if frames <= 0 or duration <= 0:
        raise DataError(f"video has no frames: {describe_video(ref)}")
    _check_length(ref, duration, max_seconds)
    return duration


def _check_length(ref: Any, duration: float, max_seconds: float | None) -> None:
    if max_seconds is not None and duration > max_seconds:
        raise DataError(f"video too long: {describe_video(ref)} is {duration:.1f} s, "
                        f"more than max_seconds={max_seconds:g}")


def sample_times(duration: float, *, fps: float, max_frames: int, min_frames: int = 1,
                 frame_multiple: int = 1) -> list[float]:
    """The times (seconds, in ``[0, duration)``) at which to take frames; see the module docstring.

    ``n = ceil(duration * fps)`` clamped to ``[min_frames, max_frames]`` and rounded down to a multiple of
    ``frame_multiple`` (up, when rounding down would go below ``min_frames`` or ``frame_multiple``);
    ``t_k = k * duration / n``. A ValueError for bad arguments (no valid count, non-positive values).
    """
    if not (duration > 0 and math.isfinite(duration)):
        raise ValueError(f"sample_times: duration must be a positive number of seconds, got {duration}")
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"sample_times: fps must be > 0, got {fps}")
    if frame_multiple < 1 or min_frames < 1 or max_frames < 1:
        raise ValueError(f"sample_times: max_frames, min_frames and frame_multiple must be >= 1, got "
                         f"{max_frames}, {min_frames}, {frame_multiple}")
    m = frame_multiple
    lo = -(-max(min_frames, m) // m) * m  # smallest multiple of m >= min_frames
    hi = max_frames // m * m
    if hi < lo:
        raise ValueError(f"sample_times: no frame count is a multiple of {m} between min_frames={min_frames} "
                         f"and max_frames={max_frames}")
    natural = max(1, math.ceil(duration * fps - 1e-9))
    n = min(max(natural // m * m, lo), hi)
    step = duration / n
    return [k * step for k in range(n)]


def load_video(ref: Any, *, fps: float = 2.0, max_frames: int = 16, min_frames: int = 1, frame_multiple: int = 1,
               max_pixels: int | None = None, max_seconds: float | None = None) -> VideoClip:
    """Decode a video reference into a :class:`VideoClip` sampled as described in the module docstring.

    Frames are RGB; `max_pixels` downsizes them (keeping the aspect ratio) so that width*height <= max_pixels.
    The clip's ``fps`` is the effective sampled rate (frames / duration), ``duration`` the source's.
    """
    kind, target, ref_fps = _resolve(ref)
    if kind == "file":
        frames, times, duration = _load_file(target, ref, fps, max_frames, min_frames,  # type: ignore[arg-type]
                                             frame_multiple, max_seconds)
    else:
        frames, times, duration = _load_frame_images(target, ref, ref_fps, fps,  # type: ignore[arg-type]
                                                     max_frames, min_frames, frame_multiple, max_seconds)
    frames = [_fit_pixels(im, max_pixels) for im in frames]
    return VideoClip(frames=frames, timestamps=times, fps=len(frames) / duration, duration=duration,
                     source=describe_video(ref))


def _fit_pixels(im: Image.Image, max_pixels: int | None) -> Image.Image:
    if max_pixels is None:
        return im
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
    w, h = im.size
    if w * h <= max_pixels:
        return im
    s = math.sqrt(max_pixels / (w * h))
    nw, nh = max(1, int(w * s)), max(1, int(h * s))
    while nw * nh > max_pixels:  # float rounding
        if nw >= nh and nw > 1:
            nw -= 1
        else:
            nh -= 1
    return im.resize((nw, nh), Image.Resampling.BICUBIC)


def _load_file(path: Path, ref: Any, fps: float, max_frames: int, min_frames: int, frame_multiple: int,
               max_seconds: float | None) -> tuple[list[Image.Image], list[float], float]:
    duration, n_frames, _ = _probe_file(path)
    if n_frames <= 0 or duration <= 0:
        raise DataError(f"video has no frames: {path}")
    _check_length(ref, duration, max_seconds)
    wanted = sample_times(duration, fps=fps, max_frames=max_frames, min_frames=min_frames,
                          frame_multiple=frame_multiple)
    with _open_container(path) as container:
        stream = _video_stream(container, path)
        chosen = _pick_frames(_decoded(container, stream, path), wanted)
        if not chosen:
            raise DataError(f"video has no frames: {path}")
        images: dict[int, Image.Image] = {}
        frames, times = [], []
        for t, frame in chosen:
            key = id(frame)
            if key not in images:
                try:
                    images[key] = to_rgb(frame.to_image())
                except Exception as e:
                    raise DataError(f"corrupt video (frame conversion failed): {path}: {e}") from None
            frames.append(images[key])
            times.append(t)
    return frames, times, duration


def _pick_frames(decoded: Iterator[tuple[float, Any]], wanted: list[float]) -> list[tuple[float, Any]]:
    """For each wanted time the (time, frame) on screen then: the last frame at or before it (the first frame for
    times before any frame). Stops decoding once every wanted time is settled."""
    chosen: list[tuple[float, Any]] = []
    prev: tuple[float, Any] | None = None
    for t, frame in decoded:
        while len(chosen) < len(wanted) and t > wanted[len(chosen)] + _TIME_TOL:
            chosen.append(prev if prev is not None else (t, frame))
        if len(chosen) == len(wanted):
            break
        prev = (t, frame)
    if prev is not None:
        chosen += [prev] * (len(wanted) - len(chosen))
    return chosen


def _load_frame_images(paths: list[Path], ref: Any, ref_fps: float, fps: float, max_frames: int, min_frames: int,
                       frame_multiple: int, max_seconds: float | None
                       ) -> tuple[list[Image.Image], list[float], float]:
    duration = len(paths) / ref_fps
    _check_length(ref, duration, max_seconds)
    wanted = sample_times(duration, fps=fps, max_frames=max_frames, min_frames=min_frames,
                          frame_multiple=frame_multiple)
    cache: dict[int, Image.Image] = {}
    frames, times = [], []
    size = None
    for t in wanted:
        k = min(len(paths) - 1, int(math.floor(t * ref_fps + _TIME_TOL)))
        if k not in cache:
            try:
                cache[k] = load_image(str(paths[k]))
            except DataError as e:
                raise DataError(f"bad frame of {describe_video(ref)}: {e}") from None
            if size is None:
                size = cache[k].size
            elif cache[k].size != size:
                raise DataError(f"frame images of {describe_video(ref)} differ in size: {paths[k]} is "
                                f"{cache[k].size[0]}x{cache[k].size[1]}, expected {size[0]}x{size[1]}")
        frames.append(cache[k])
        times.append(k / ref_fps)
    return frames, times, duration
