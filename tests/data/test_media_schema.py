"""The `videos` and `audios` fields of the dataset schema: parsing, errors that name file, line and field, and the
media limits applied when a dataset is loaded."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mmrft.data.audio import write_audio
from mmrft.data.clips import AudioClip, VideoClip
from mmrft.data.schema import Sample
from mmrft.data.sources import load_samples
from mmrft.data.video_write import write_video
from mmrft.errors import DataError
from tests.data.conftest import write_jsonl


def _row(**extra):
    return {"id": "s1", "prompt": "How many?", "answer": "2", **extra}


def test_video_refs_are_resolved_against_the_data_file(tmp_path):
    s = Sample.from_row(_row(videos=["clips/a.mp4", {"path": "frames/b", "fps": 4},
                                      {"frames": ["f/0.png", "f/1.png"], "fps": 2}]), base_dir=tmp_path, where="d:1")
    assert s.videos == [str(tmp_path / "clips/a.mp4"), {"path": str(tmp_path / "frames/b"), "fps": 4.0},
                        {"frames": [str(tmp_path / "f/0.png"), str(tmp_path / "f/1.png")], "fps": 2.0}]
    assert s.modalities == ("video",)
    row = s.to_row(base_dir=tmp_path)  # and back, relative again
    assert row["videos"] == ["clips/a.mp4", {"path": "frames/b", "fps": 4.0},
                             {"frames": ["f/0.png", "f/1.png"], "fps": 2.0}]


def test_audio_refs_paths_and_embedded_bytes(tmp_path):
    s = Sample.from_row(_row(audios=["a.wav", {"bytes": b"RIFF....", "path": "x.wav"}], images=["i.png"]),
                        base_dir=tmp_path, where="d:1")
    assert s.audios == [str(tmp_path / "a.wav"), {"bytes": b"RIFF....", "path": "x.wav"}]
    assert s.modalities == ("image", "audio")


@pytest.mark.parametrize("field,value,message", [
    ("videos", "a.mp4", "field 'videos': expected a list of video paths, got str (wrap a single path in a list)"),
    ("videos", [3], "field 'videos': item 0: expected a video path or a {'path'|'frames': ..., 'fps': ...} dict"),
    ("videos", [{"fps": 2}], "field 'videos': item 0: a video dict needs 'path'"),
    ("videos", [{"path": "d", "fps": 0}], "field 'videos': item 0: key 'fps': expected a positive number"),
    ("videos", [{"frames": []}], "field 'videos': item 0: key 'frames': expected a non-empty list"),
    ("videos", ["https://x.org/a.mp4"], "field 'videos': item 0: remote URLs are not supported"),
    ("audios", [{"bytes": b""}], "field 'audios': item 0: expected non-empty audio file bytes"),
    ("audios", [None], "field 'audios': item 0: expected an audio file path"),
])
def test_bad_media_fields_name_the_row_and_field(tmp_path, field, value, message):
    with pytest.raises(DataError) as e:
        Sample.from_row(_row(**{field: value}), base_dir=tmp_path, where="data.jsonl:7")
    assert str(e.value).startswith("data.jsonl:7: ") and message in str(e.value)


def _clip(seconds: float, fps: float = 2.0) -> VideoClip:
    n = int(seconds * fps)
    frames = [Image.new("RGB", (32, 32), (200, 30, 30)) for _ in range(n)]
    return VideoClip(frames, [k / fps for k in range(n)], fps, seconds)


def test_load_samples_checks_videos_and_audio(tmp_path):
    write_video(_clip(3.0), tmp_path / "short.mp4")
    write_video(_clip(8.0), tmp_path / "long.mp4")
    write_audio(AudioClip(np.zeros(16000 * 2, dtype=np.float32), 16000), tmp_path / "two.wav")
    data = write_jsonl(tmp_path / "data.jsonl", [
        _row(id="a", videos=["short.mp4"], audios=["two.wav"]),
        _row(id="b", videos=["long.mp4"]),
        _row(id="c", videos=["missing.mp4"]),
        _row(id="d", audios=["two.wav"]),
    ])
    # no limits: only the missing file is an error, reported with file:line and field
    with pytest.raises(DataError) as e:
        load_samples(data)
    assert f"{data}:3: field 'videos': item 0:" in str(e.value) and "missing.mp4" in str(e.value)
    # with limits, the over-long video is the first error
    with pytest.raises(DataError) as e:
        load_samples(data, max_video_seconds=5)
    assert f"{data}:2: field 'videos': item 0: video too long" in str(e.value) and "long.mp4" in str(e.value)
    with pytest.raises(DataError) as e:
        load_samples(data, max_audio_seconds=1)
    assert f"{data}:1: field 'audios': item 0: audio too long" in str(e.value)
    # skipping bad rows keeps the good ones
    kept = load_samples(data, skip_bad_rows=True, max_video_seconds=5)
    assert [s.id for s in kept] == ["a", "d"]


def test_unreadable_video_names_the_file(tmp_path):
    (tmp_path / "fake.mp4").write_text("not a video")
    data = write_jsonl(tmp_path / "data.jsonl", [_row(videos=["fake.mp4"])])
    with pytest.raises(DataError) as e:
        load_samples(data)
    assert f"{data}:1: field 'videos': item 0:" in str(e.value) and "fake.mp4" in str(e.value)
