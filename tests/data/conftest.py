"""Shared by the data tests: a directory with two small images, and writing rows as a jsonl file."""

import json

import pytest
from PIL import Image


def write_jsonl(path, rows):
    """`rows` as one JSON object per line in `path`; returns `path`."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def root(tmp_path):
    """`tmp_path` with `img/red.png` (RGB 4x4) and `img/blue.png` (L 3x2)."""
    (tmp_path / "img").mkdir()
    Image.new("RGB", (4, 4), (255, 0, 0)).save(tmp_path / "img" / "red.png")
    Image.new("L", (3, 2), 9).save(tmp_path / "img" / "blue.png")
    return tmp_path
