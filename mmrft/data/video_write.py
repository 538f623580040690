"""Writing a :class:`~mmrft.data.clips.VideoClip` as H.264 (yuv420p, near-lossless constant quality) in mp4,
atomically, so synthetic datasets are saved and read back (`mmrft.data.video.load_video`) with the same frames and
times."""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np
from PIL import Image

from mmrft import atomic
from mmrft.data.clips import VideoClip
from mmrft.data.media import to_rgb

__all__ = ["WRITE_CRF", "write_video"]

#: constant-quality setting of :func:`write_video` (x264 CRF; 0 = lossless, 23 = x264's default)
WRITE_CRF = 12


def write_video(clip: VideoClip, path: str | os.PathLike) -> None:
    """Save `clip` as H.264 (libx264, yuv420p, CRF :data:`WRITE_CRF`) in mp4 at the clip's fps.

    Frames must all have the same even width and height (ValueError otherwise). Written atomically: encoded to a
    temporary ``.mp4`` in the same directory, fsynced, then renamed over `path`; the temporary file is removed if
    anything fails. Decoding gives frame ``k`` at ``k / fps`` seconds.
    """
    w, h = clip.frames[0].size
    if w % 2 or h % 2:
        raise ValueError(f"write_video: H.264 yuv420p needs an even frame size, got {w}x{h} ({path})")
    for i, im in enumerate(clip.frames):
        if getattr(im, "size", None) != (w, h):
            raise ValueError(f"write_video: frame {i} is {getattr(im, 'size', type(im).__name__)}, expected {w}x{h}")
    rate = Fraction(clip.fps).limit_denominator(1000)
    with atomic.file(path) as tmp:
        _encode(clip.frames, rate, (w, h), str(tmp))


def _encode(frames: list[Image.Image], rate: Fraction, size: tuple[int, int], out: str) -> None:
    with av.open(out, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(WRITE_CRF)}
        time_base = 1 / rate
        for k, im in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.asarray(to_rgb(im), dtype=np.uint8), format="rgb24")
            frame.pts = k
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
