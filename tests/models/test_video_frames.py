"""FramesVideoProcessor against the stock Qwen2-VL video patch layout, written out here from transformers'
`Qwen2VLVideoProcessor.patchify` (which needs torchvision to run): distinct frames must land in the same places."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from mmrft.models.video_frames import FramesVideoProcessor


def _image_processor():
    from transformers import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(min_pixels=112 * 112, max_pixels=112 * 112)


def _stock_patchify(videos: torch.Tensor, patch: int, merge: int, tp: int) -> torch.Tensor:
    b, t, c, h, w = videos.shape
    if pad := -t % tp:
        videos = torch.cat((videos, videos[:, -1:].expand(-1, pad, -1, -1, -1)), dim=1)
        t += pad
    gt, gh, gw = t // tp, h // patch, w // patch
    x = videos.view(b, gt, tp, c, gh // merge, merge, patch, gw // merge, merge, patch)
    x = x.permute(0, 1, 4, 7, 5, 8, 3, 2, 6, 9)
    return x.reshape(b, gt * gh * gw, c * tp * patch * patch)


def test_distinct_frames_match_the_stock_layout():
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)) for _ in range(5)]
    ip = _image_processor()
    out = FramesVideoProcessor(ip)(videos=[frames], return_tensors="pt")
    # the stock processor's input: frames rescaled and normalised like images (112 px: no resize here)
    mean, std = np.asarray(ip.image_mean), np.asarray(ip.image_std)
    arr = np.stack([(np.asarray(f, dtype=np.float64) / 255.0 - mean) / std for f in frames])  # [T, H, W, C]
    videos = torch.tensor(arr.transpose(0, 3, 1, 2)[None], dtype=torch.float32)
    want = _stock_patchify(videos, patch=14, merge=2, tp=2)[0]
    assert out["video_grid_thw"].tolist() == [[3, 8, 8]]  # 5 frames padded to 6 -> 3 temporal groups
    torch.testing.assert_close(out["pixel_values_videos"], want, atol=1e-5, rtol=1e-5)
    assert out["video_metadata"][0].fps == 2.0
