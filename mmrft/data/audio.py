"""Reading and writing audio clips referenced by samples.

An audio reference (:data:`mmrft.data.schema.AudioRef`) is either a path (absolute once loaded through
:func:`mmrft.data.sources.load_samples`) to anything ``soundfile`` (libsndfile) reads -- wav, flac, ogg, ... -- or
a ``{"bytes": b"...", "path": str | None}`` dict, the storage layout of the HF ``datasets.Audio`` feature.

Clips are decoded to float32, mixed down to mono (channel mean) and resampled with ``soxr`` to the rate the model's
feature extractor expects, giving an :class:`~mmrft.data.clips.AudioClip`. As with images
(:mod:`mmrft.data.media`), every failure is a :class:`~mmrft.errors.DataError` that names the audio and the
reason, so a bad file in a dataset is reported to the user instead of crashing a worker with a libsndfile
traceback. :func:`write_audio` saves clips as 16-bit PCM WAV atomically (synthetic datasets use it).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import IO, Any

import numpy as np
import soundfile as sf
import soxr

from mmrft import atomic
from mmrft.data.clips import AudioClip
from mmrft.data.media import describe_ref
from mmrft.errors import DataError

__all__ = ["check_audio", "describe_audio", "load_audio", "write_audio"]

RESAMPLE_QUALITY = "HQ"


def describe_audio(ref: Any) -> str:
    """A short human-readable name for an audio reference, for error messages."""
    return describe_ref(ref, "audio")


def _open_source(ref: Any) -> IO[bytes] | str:
    """What to hand to ``soundfile``: a path (after checking it exists and is non-empty) or a bytes buffer."""
    if isinstance(ref, dict):
        data = ref.get("bytes")
        if data is not None:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise DataError(f"invalid audio reference: 'bytes' must be bytes, got {type(data).__name__}")
            if not len(data):
                raise DataError(f"empty audio: {describe_audio(ref)} has no data")
            return io.BytesIO(bytes(data))
        ref = ref.get("path")
    if not isinstance(ref, (str, os.PathLike)) or not str(ref):
        raise DataError(f"invalid audio reference {ref!r}: expected a path or a {{'bytes': ..., 'path': ...}} dict")
    path = Path(ref)
    if not path.exists():
        raise DataError(f"audio file not found: {path}")
    if not path.is_file():
        raise DataError(f"audio path is not a file: {path}")
    if path.stat().st_size == 0:
        raise DataError(f"empty audio file: {path} is 0 bytes")
    return str(path)


def _reason(e: Exception) -> str:
    """libsndfile's own reason ("Format not recognised.") without the path it repeats."""
    text = getattr(e, "error_string", None) or str(e) or type(e).__name__
    return text.rstrip(".")


def _open(ref: Any) -> sf.SoundFile:
    source = _open_source(ref)
    try:
        return sf.SoundFile(source)
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError, OSError) as e:
        raise DataError(f"not a readable audio file (unknown format or corrupt): {describe_audio(ref)}: "
                        f"{_reason(e)}") from None


def _check_header(f: sf.SoundFile, ref: Any, max_seconds: float | None) -> float:
    """Duration in seconds from the header; DataError when it is empty or longer than `max_seconds`."""
    if f.samplerate <= 0 or f.channels <= 0:
        raise DataError(f"not a readable audio file: {describe_audio(ref)}: header says {f.samplerate} Hz, "
                        f"{f.channels} channels")
    if f.frames <= 0:
        raise DataError(f"empty audio: {describe_audio(ref)} has no samples")
    duration = f.frames / f.samplerate
    if max_seconds is not None and duration > max_seconds:
        raise DataError(f"audio too long: {describe_audio(ref)} is {duration:.1f} s, "
                        f"more than max_seconds={max_seconds:g}")
    return duration


def _check_max_seconds(max_seconds: float | None) -> None:
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be > 0, got {max_seconds!r}")


def check_audio(ref: Any, *, max_seconds: float | None = None) -> float:
    """Cheap validity check: the file exists, libsndfile recognises it and its header declares samples.

    Returns the duration in seconds. Reads only the header, so a file truncated mid-stream can still pass.
    """
    _check_max_seconds(max_seconds)
    with _open(ref) as f:
        return _check_header(f, ref, max_seconds)


def _to_mono(data: np.ndarray) -> np.ndarray:
    """``[frames, channels]`` -> ``[frames]`` by averaging the channels."""
    return data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)


def load_audio(ref: Any, *, rate: int, max_seconds: float | None = None) -> AudioClip:
    """Decode an audio file to a mono float32 :class:`AudioClip` at `rate` Hz (the file is closed on return).

    Channels are averaged; a file at another sample rate is resampled with soxr. `max_seconds` rejects a clip
    whose header declares a longer duration before anything is decoded.
    """
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise ValueError(f"rate must be a positive integer number of Hz, got {rate!r}")
    _check_max_seconds(max_seconds)
    with _open(ref) as f:
        _check_header(f, ref, max_seconds)
        source_rate = f.samplerate
        try:
            data = f.read(dtype="float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError, ValueError, OSError) as e:
            raise DataError(f"corrupt audio: {describe_audio(ref)}: {_reason(e)}") from None
    if data.shape[0] == 0:
        raise DataError(f"empty audio: {describe_audio(ref)} has no samples")
    samples = _to_mono(data)
    if not np.isfinite(samples).all():
        raise DataError(f"corrupt audio: {describe_audio(ref)} contains non-finite samples")
    if source_rate != rate:
        samples = soxr.resample(samples, source_rate, int(rate), quality=RESAMPLE_QUALITY)
    samples = np.clip(samples, -1.0, 1.0).astype(np.float32, copy=False)
    return AudioClip(samples, int(rate), source=describe_audio(ref))


def write_audio(clip: AudioClip, path: str | os.PathLike) -> None:
    """Save `clip` as a 16-bit PCM WAV file at `path`, atomically.

    The data go to a temporary ``.wav`` file beside `path`, are flushed to disk and renamed over `path`: a reader
    sees the old file or the new one, never a part. Samples are clipped to [-1, 1] first (16-bit PCM cannot hold
    more). On failure the temporary file is removed, `path` is untouched and a DataError names `path`.
    """
    path = Path(path)
    samples = np.asarray(clip.samples, dtype=np.float32)
    if not np.isfinite(samples).all():
        raise DataError(f"cannot write audio {path}: the clip contains non-finite samples")
    samples = np.clip(samples, -1.0, 1.0)
    try:
        with atomic.file(path) as tmp:
            sf.write(str(tmp), samples, clip.rate, format="WAV", subtype="PCM_16")
    except (sf.SoundFileError, RuntimeError, ValueError, OSError) as e:
        raise DataError(f"cannot write audio {path}: {_reason(e)}") from None
