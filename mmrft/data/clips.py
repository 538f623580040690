"""In-memory forms of time-based media: a decoded video clip and a mono audio clip.

Readers (`mmrft.data.video`, `mmrft.data.audio`) produce them from files; synthetic tasks render them; collation
hands them to the model family's processor. Times are seconds from the start of the source file, so a model can be
asked (and graded) in seconds whatever frames were sampled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image


@dataclass
class VideoClip:
    """Sampled frames of a video, in time order.

    frames      RGB PIL images, all the same size
    timestamps  seconds of each frame from the start of the video (same length as `frames`, increasing)
    fps         the rate the frames were sampled at (frames per second of *this clip*, not of the source file)
    duration    seconds covered by the source (>= the last timestamp)
    """

    frames: list[Image.Image]
    timestamps: list[float]
    fps: float
    duration: float
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if len(self.frames) != len(self.timestamps):
            raise ValueError(f"VideoClip: {len(self.frames)} frames but {len(self.timestamps)} timestamps")
        if not self.frames:
            raise ValueError("VideoClip: no frames")
        if self.fps <= 0:
            raise ValueError(f"VideoClip: fps must be > 0, got {self.fps}")

    @property
    def size(self) -> tuple[int, int]:
        return self.frames[0].size


@dataclass
class AudioClip:
    """Mono audio as float32 samples in [-1, 1] at `rate` Hz."""

    samples: np.ndarray
    rate: int
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        self.samples = np.asarray(self.samples, dtype=np.float32)
        if self.samples.ndim != 1:
            raise ValueError(f"AudioClip: expected mono samples of shape [n], got {self.samples.shape}")
        if self.rate <= 0:
            raise ValueError(f"AudioClip: rate must be > 0, got {self.rate}")

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate
