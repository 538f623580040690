import io
import os

import pytest
from PIL import Image

from mmrft.data.media import check_image, load_image
from mmrft.errors import DataError, MmrftError


def _save(path, mode="RGB", size=(8, 6), color=(10, 200, 30)):
    Image.new(mode, size, color).save(path)
    return str(path)


def _png_bytes(mode="RGB", size=(5, 4)):
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format="PNG")
    return buf.getvalue()


def test_error_hierarchy():
    assert issubclass(DataError, MmrftError)


def test_load_rgb_path(tmp_path):
    im = load_image(_save(tmp_path / "a.png"))
    assert im.mode == "RGB" and im.size == (8, 6)
    assert im.getpixel((0, 0)) == (10, 200, 30)


def test_load_converts_grayscale_and_rgba(tmp_path):
    gray = load_image(_save(tmp_path / "g.png", "L", color=77))
    assert gray.mode == "RGB" and gray.getpixel((1, 1)) == (77, 77, 77)
    rgba = load_image(_save(tmp_path / "t.png", "RGBA", color=(0, 0, 0, 0)))
    assert rgba.mode == "RGB" and rgba.getpixel((1, 1)) == (255, 255, 255)  # transparent -> white
    opaque = load_image(_save(tmp_path / "o.png", "RGBA", color=(1, 2, 3, 255)))
    assert opaque.getpixel((0, 0)) == (1, 2, 3)


def test_load_closes_file_and_is_loaded(tmp_path):
    path = _save(tmp_path / "a.png")
    im = load_image(path)
    os.remove(path)  # data must already be in memory
    assert im.getpixel((7, 5)) == (10, 200, 30)
    assert getattr(im, "fp", None) is None


def test_load_bytes_dict():
    im = load_image({"bytes": _png_bytes("LA"), "path": None})
    assert im.mode == "RGB" and im.size == (5, 4)
    assert check_image({"bytes": _png_bytes(), "path": "x.png"}) == (5, 4)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="image not found: .*nope.png"):
        load_image(str(tmp_path / "nope.png"))
    with pytest.raises(DataError, match="not found"):
        check_image(str(tmp_path / "nope.png"))


def test_corrupt_file(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(os.urandom(256))
    for fn in (load_image, check_image):
        with pytest.raises(DataError, match="not a readable image.*bad.png"):
            fn(str(bad))
    with pytest.raises(DataError, match="embedded image"):
        load_image({"bytes": b"not an image", "path": None})


def test_truncated_file(tmp_path):
    data = _png_bytes(size=(64, 64))
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) - 30])
    with pytest.raises(DataError, match="cut.png"):
        load_image(str(cut))


def test_max_pixels(tmp_path):
    path = _save(tmp_path / "big.png", size=(100, 100))
    with pytest.raises(DataError, match=r"too large: .*big.png is 100x100 = 10000 pixels.*max_pixels=5000"):
        load_image(path, max_pixels=5000)
    with pytest.raises(DataError, match="too large"):
        check_image(path, max_pixels=9999)
    assert load_image(path, max_pixels=10000).size == (100, 100)


def test_invalid_ref():
    with pytest.raises(DataError, match="invalid image reference"):
        load_image(42)
