"""Qwen-VL video inputs from decoded frames, without torchvision.

transformers' Qwen2-VL / Qwen2.5-VL video processors are torchvision-only. Their output is simple to state: every
frame resized and normalised exactly as an image, frames grouped in pairs (`temporal_patch_size`, the last frame
repeated to fill a pair), and each spatial patch of a pair flattened as (channel, time, patch_y, patch_x).
:class:`FramesVideoProcessor` builds that from the image processor's own PIL/numpy output (so resizing and
normalisation are the stock code's), which is why it is written here rather than borrowed: no torchvision-free
implementation exists in transformers. The image-only processors in `processors.py` use it; with torchvision
present, real checkpoints keep the stock video processor.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image
from transformers import BatchFeature
from transformers.video_utils import VideoMetadata

from mmrft.data.clips import VideoClip


class FramesVideoProcessor:
    """Callable like a transformers video processor: `videos` is a list of videos, each a list of PIL frames (all
    of one size, already sampled) or a `VideoClip`; `video_metadata` (as the stock processors take it) gives each
    video's sampled fps. Returns `pixel_values_videos` [sum of patches, C*T*p*p], `video_grid_thw` [num_videos, 3]
    and `video_metadata` (one `VideoMetadata` per video)."""

    def __init__(self, image_processor, fps: float = 2.0):
        self.image_processor = image_processor
        self.patch_size = int(image_processor.patch_size)
        self.merge_size = int(image_processor.merge_size)
        self.temporal_patch_size = int(image_processor.temporal_patch_size)
        self.fps = fps  # used when a video is a bare list of frames

    def _frames(self, video: Any, meta: Any) -> tuple[list[Image.Image], float]:
        if isinstance(video, VideoClip):
            return list(video.frames), float(video.fps)
        frames = list(video)
        if not frames or not all(isinstance(f, Image.Image) for f in frames):
            raise TypeError("FramesVideoProcessor: each video must be a VideoClip or a non-empty list of PIL images")
        fps = meta.get("fps") if isinstance(meta, dict) else getattr(meta, "fps", None)
        return frames, float(fps or self.fps)

    def _video_patches(self, frames: list[Image.Image]) -> tuple[np.ndarray, list[int]]:
        if len({f.size for f in frames}) != 1:
            raise ValueError(f"frames of one video differ in size: {sorted({f.size for f in frames})}")
        t = self.temporal_patch_size
        frames = frames + [frames[-1]] * (-len(frames) % t)
        out = self.image_processor(images=frames, return_tensors="np")
        grid = out["image_grid_thw"][0]
        n_spatial = int(grid[1] * grid[2])
        p = self.patch_size
        # every image patch holds its frame broadcast over time: [frames, spatial, C, T, p, p] -> keep t=0
        per_frame = out["pixel_values"].reshape(len(frames), n_spatial, -1, t, p, p)[:, :, :, 0]
        channels = per_frame.shape[2]
        # [groups, T, spatial, C, p, p] -> [groups, spatial, C, T, p, p]
        grouped = per_frame.reshape(len(frames) // t, t, n_spatial, channels, p, p).transpose(0, 2, 3, 1, 4, 5)
        patches = grouped.reshape(len(frames) // t * n_spatial, channels * t * p * p)
        return np.ascontiguousarray(patches), [len(frames) // t, int(grid[1]), int(grid[2])]

    def __call__(self, videos: Any = None, return_tensors: str | None = None, video_metadata: Any = None,
                 **_: Any) -> BatchFeature:
        if videos is None:
            raise ValueError("FramesVideoProcessor: no videos given")
        if isinstance(videos, VideoClip) or (isinstance(videos, list) and videos and isinstance(videos[0], Image.Image)):
            videos = [videos]
        metas = list(video_metadata) if isinstance(video_metadata, (list, tuple)) else [video_metadata] * len(videos)
        if len(metas) != len(videos):
            raise ValueError(f"FramesVideoProcessor: {len(videos)} videos but {len(metas)} video_metadata entries")
        all_patches, grids, metadata = [], [], []
        for video, meta in zip(videos, metas):
            frames, fps = self._frames(video, meta)
            patches, grid = self._video_patches(frames)
            all_patches.append(patches)
            grids.append(grid)
            w, h = frames[0].size
            metadata.append(VideoMetadata(total_num_frames=len(frames), fps=fps, width=w, height=h,
                                          duration=len(frames) / fps, frames_indices=list(range(len(frames)))))
        data = {"pixel_values_videos": np.concatenate(all_patches), "video_grid_thw": np.array(grids, dtype=np.int64)}
        features = BatchFeature(data=data, tensor_type=return_tensors)
        features["video_metadata"] = metadata
        return features
