"""Reading images referenced by samples.

An image reference (:data:`mmrft.data.schema.ImageRef`) is either a path (absolute once loaded
through :func:`mmrft.data.sources.load_samples`) or a ``{"bytes": b"...", "path": str | None}``
dict, the storage layout of the HF ``datasets.Image`` feature. Every failure is a
:class:`~mmrft.errors.DataError` that names the image and the reason.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import IO, Any, Optional

from PIL import Image

from mmrft.errors import DataError


def describe_ref(ref: Any, kind: str = "image") -> str:
    """A short human-readable name for a media reference (`kind`: image, audio), for error messages."""
    if isinstance(ref, dict) and ref.get("bytes") is not None:
        name = f", path {ref['path']!r}" if ref.get("path") else ""
        return f"embedded {kind} ({len(ref['bytes'])} bytes{name})"
    if isinstance(ref, dict):
        return str(ref.get("path"))
    return str(ref)


def _open_source(ref: Any) -> IO[bytes] | str:
    """What to hand to ``Image.open``: a path (after checking it exists) or a bytes buffer."""
    if isinstance(ref, dict):
        if ref.get("bytes") is not None:
            return io.BytesIO(ref["bytes"])
        ref = ref.get("path")
    if not isinstance(ref, (str, os.PathLike)) or not str(ref):
        raise DataError(f"invalid image reference {ref!r}: expected a path or a {{'bytes': ..., 'path': ...}} dict")
    path = Path(ref)
    if not path.exists():
        raise DataError(f"image not found: {path}")
    if not path.is_file():
        raise DataError(f"image path is not a file: {path}")
    return str(path)


def _check_size(im: Image.Image, ref: Any, max_pixels: int | None) -> None:
    width, height = im.size
    if max_pixels is not None and width * height > max_pixels:
        raise DataError(f"image too large: {describe_ref(ref)} is {width}x{height} = {width * height} pixels, "
                        f"more than max_pixels={max_pixels}")


def _open(ref: Any) -> Image.Image:
    source = _open_source(ref)
    try:
        return Image.open(source)
    except Image.DecompressionBombError as e:
        raise DataError(f"image too large (decompression bomb guard): {describe_ref(ref)}: {e}") from None
    except Image.UnidentifiedImageError:
        raise DataError(f"not a readable image (unknown format or corrupt): {describe_ref(ref)}") from None
    except Exception as e:  # PIL raises many types for bad files
        raise DataError(f"not a readable image: {describe_ref(ref)}: {e}") from None


def check_image(ref: Any, *, max_pixels: int | None = None) -> tuple[int, int]:
    """Cheap validity check (exists, recognised format, intact header/chunks); returns (width, height).

    Does not decode the pixel data, so a file truncated mid-stream can still pass.
    """
    with _open(ref) as im:
        _check_size(im, ref, max_pixels)
        size = im.size
        try:
            im.verify()
        except Exception as e:
            raise DataError(f"corrupt image: {describe_ref(ref)}: {e or type(e).__name__}") from None
    return size


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert to RGB; transparent images are composited onto a white background."""
    if im.mode == "RGB":
        return im.copy()
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def load_image(ref: Any, *, max_pixels: int | None = None) -> Image.Image:
    """Load an image fully into memory as RGB (the file is closed on return).

    `max_pixels` rejects images whose width*height exceeds it before any pixel data is decoded
    (PIL's own decompression-bomb limit applies in any case).
    """
    with _open(ref) as im:
        _check_size(im, ref, max_pixels)
        try:
            im.load()
            return to_rgb(im)
        except Image.DecompressionBombError as e:
            raise DataError(f"image too large (decompression bomb guard): {describe_ref(ref)}: {e}") from None
        except Exception as e:
            raise DataError(f"corrupt image: {describe_ref(ref)}: {e or type(e).__name__}") from None


def fitted_size(width: int, height: int, max_pixels: Optional[int] = None, min_pixels: Optional[int] = None
                ) -> tuple[int, int]:
    """(w, h) that `fit_pixels` gives an image of this size."""
    w, h = width, height
    area = w * h
    if max_pixels is not None and max_pixels > 0 and area > max_pixels:
        scale = math.sqrt(max_pixels / area)
        nw, nh = max(1, math.floor(w * scale)), max(1, math.floor(h * scale))
        while nw * nh > max_pixels and (nw > 1 or nh > 1):  # floor rounding can still leave it a little over
            if nw >= nh:
                nw -= 1
            else:
                nh -= 1
        return nw, nh
    if min_pixels is not None and min_pixels > 0 and area < min_pixels:
        scale = math.sqrt(min_pixels / area)
        nw, nh = max(1, math.ceil(w * scale)), max(1, math.ceil(h * scale))
        if max_pixels is not None and max_pixels > 0 and nw * nh > max_pixels:  # min ~ max: stay within max
            scale = math.sqrt(max_pixels / area)
            nw, nh = max(1, math.floor(w * scale)), max(1, math.floor(h * scale))
        return nw, nh
    return w, h


def fit_pixels(image: Image.Image, max_pixels: Optional[int] = None, min_pixels: Optional[int] = None
               ) -> Image.Image:
    """`image` resized, aspect ratio kept, so that its pixel count w*h is at most `max_pixels` and at least
    `min_pixels` (either may be `None`: no limit); unchanged when it already fits. Each side stays >= 1 pixel, so an
    extremely thin image may end up slightly outside `min_pixels`. Downscaling uses LANCZOS, upscaling BICUBIC."""
    size = fitted_size(*image.size, max_pixels, min_pixels)
    if size == image.size:
        return image
    shrink = size[0] * size[1] < image.size[0] * image.size[1]
    return image.resize(size, Image.Resampling.LANCZOS if shrink else Image.Resampling.BICUBIC)
