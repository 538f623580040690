"""Video references: sampling, decoding (files, frame directories, frame lists), writing, and error messages."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

import mmrft.data.video as video
import mmrft.data.video_write as video_write
from mmrft.data.clips import VideoClip
from mmrft.data.video import check_video, describe_video, load_video, probe_video, sample_times
from mmrft.data.video_write import write_video
from mmrft.errors import DataError

RED = (220, 30, 30)
BLUE = (30, 70, 220)
TOL = 24  # per channel, after H.264 yuv420p at the writer's CRF


def moving_square_clip(n: int = 8, fps: float = 2.0, size: tuple[int, int] = (64, 48)) -> VideoClip:
    """A red 16x16 square moving 4 px right per frame on white."""
    frames = []
    for k in range(n):
        im = Image.new("RGB", size, (255, 255, 255))
        ImageDraw.Draw(im).rectangle([4 + 4 * k, 12, 19 + 4 * k, 27], fill=RED)
        frames.append(im)
    return VideoClip(frames, [k / fps for k in range(n)], fps, n / fps)


@pytest.fixture(scope="module")
def mp4(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "square.mp4"
    write_video(moving_square_clip(), path)
    return path


def near(pixel, rgb, tol: int = TOL) -> bool:
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(pixel, rgb))


# --------------------------------------------------------------------------- round trip


def test_round_trip_frames_times_and_colours(mp4):
    clip = load_video(mp4, fps=2.0, max_frames=16)
    assert len(clip.frames) == 8
    assert clip.timestamps == pytest.approx([k / 2 for k in range(8)], abs=1e-3)
    assert clip.fps == pytest.approx(2.0) and clip.duration == pytest.approx(4.0)
    assert clip.size == (64, 48) and all(im.mode == "RGB" for im in clip.frames)
    for k, im in enumerate(clip.frames):
        assert near(im.getpixel((11 + 4 * k, 19)), RED), k  # the square's centre
        assert near(im.getpixel((60, 44)), (255, 255, 255)), k
    assert clip.source == str(mp4)


def test_probe_and_check(mp4):
    assert probe_video(mp4) == (pytest.approx(4.0), 8, (64, 48))
    assert check_video(mp4) == pytest.approx(4.0)
    assert check_video(str(mp4), max_seconds=4.0) == pytest.approx(4.0)


def test_headers_without_duration_are_probed_by_decoding(tmp_path):
    """A raw H.264 stream has no container duration: the frames are counted by one full decode."""
    av = pytest.importorskip("av")
    path = tmp_path / "raw.h264"
    with av.open(str(path), "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=5)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for k in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 20 * k, np.uint8), format="rgb24")
            frame.pts = k
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    duration, frames, size = probe_video(path)
    assert frames == 10 and size == (32, 32) and duration > 0
    assert check_video(path) == pytest.approx(duration)
    assert len(load_video(path, fps=1000, max_frames=10).frames) == 10


def test_fractional_fps_round_trip(tmp_path):
    path = tmp_path / "f.mp4"
    write_video(moving_square_clip(n=5, fps=2.5), path)
    clip = load_video(path, fps=2.5)
    assert clip.timestamps == pytest.approx([0.0, 0.4, 0.8, 1.2, 1.6], abs=1e-3)
    assert clip.duration == pytest.approx(2.0)


def test_write_video_overwrites_atomically(tmp_path):
    path = tmp_path / "v.mp4"
    path.write_bytes(b"old")
    write_video(moving_square_clip(n=4), path)
    assert len(load_video(path).frames) == 4
    assert sorted(os.listdir(tmp_path)) == ["v.mp4"]


# --------------------------------------------------------------------------- sampling

@pytest.mark.parametrize(
    "duration, kwargs, expected",
    [
        (4.0, dict(fps=2, max_frames=16), [k / 2 for k in range(8)]),  # natural count: k / fps
        (4.0, dict(fps=1, max_frames=16), [0.0, 1.0, 2.0, 3.0]),
        (10.0, dict(fps=2, max_frames=4), [0.0, 2.5, 5.0, 7.5]),  # capped: spread over the whole clip
        (1.0, dict(fps=1, max_frames=16, min_frames=4), [0.0, 0.25, 0.5, 0.75]),  # raised to min_frames
        (4.5, dict(fps=2, max_frames=16, frame_multiple=2), [k * 4.5 / 8 for k in range(8)]),  # 9 -> 8
        (4.0, dict(fps=2, max_frames=7, frame_multiple=2), [k * 4 / 6 for k in range(6)]),  # 7 -> 6
        (4.2, dict(fps=2, max_frames=16), [k * 4.2 / 9 for k in range(9)]),  # 0 .. 4.0 lie in [0, 4.2)
        (0.3, dict(fps=2, max_frames=16), [0.0]),  # shorter than one frame
        (0.3, dict(fps=2, max_frames=16, frame_multiple=2), [0.0, 0.15]),  # never below frame_multiple
        (2.0, dict(fps=2, max_frames=16, min_frames=3, frame_multiple=2), [0.0, 0.5, 1.0, 1.5]),
        (0.5, dict(fps=2, max_frames=16, min_frames=3, frame_multiple=2), [0.0, 0.125, 0.25, 0.375]),
    ],
)
def test_sample_times(duration, kwargs, expected):
    times = sample_times(duration, **kwargs)
    assert times == pytest.approx(expected)
    assert all(0 <= t < duration for t in times)
    assert times == sorted(times)


@pytest.mark.parametrize(
    "duration, kwargs",
    [
        (0.0, dict(fps=2, max_frames=4)),
        (4.0, dict(fps=0, max_frames=4)),
        (4.0, dict(fps=2, max_frames=0)),
        (4.0, dict(fps=2, max_frames=3, min_frames=4)),
        (4.0, dict(fps=2, max_frames=3, min_frames=3, frame_multiple=2)),
    ],
)
def test_sample_times_rejects_bad_arguments(duration, kwargs):
    with pytest.raises(ValueError):
        sample_times(duration, **kwargs)


def test_load_video_caps_and_multiples(mp4):
    clip = load_video(mp4, fps=10.0, max_frames=4)  # wanted 0, 1, 2, 3 s: frames 0, 2, 4, 6
    assert clip.timestamps == pytest.approx([0.0, 1.0, 2.0, 3.0], abs=1e-3)
    assert clip.fps == pytest.approx(1.0)
    for k, im in zip((0, 2, 4, 6), clip.frames):
        assert near(im.getpixel((11 + 4 * k, 19)), RED)
    clip = load_video(mp4, fps=2.0, max_frames=7, frame_multiple=2)
    assert len(clip.frames) == 6
    # wanted k * 4/6 s; the frame on screen then (at or before): 0, 0.5, 1.0, 2.0, 2.5, 3.0
    assert clip.timestamps == pytest.approx([0.0, 0.5, 1.0, 2.0, 2.5, 3.0], abs=1e-3)
    clip = load_video(mp4, fps=0.5, min_frames=4)  # 2 natural frames raised to 4
    assert clip.timestamps == pytest.approx([0.0, 1.0, 2.0, 3.0], abs=1e-3)


def test_max_pixels_downsizes_keeping_aspect(mp4):
    clip = load_video(mp4, max_pixels=1000)
    w, h = clip.size
    assert w * h <= 1000 and all(im.size == (w, h) for im in clip.frames)
    assert w / h == pytest.approx(64 / 48, rel=0.06)
    assert load_video(mp4, max_pixels=64 * 48).size == (64, 48)


# --------------------------------------------------------------------------- frame directories and lists

FRAME_COLOURS = [RED, BLUE, (30, 160, 50), (235, 195, 0), (140, 40, 170), (245, 130, 20)]


@pytest.fixture
def frame_dir(tmp_path) -> Path:
    d = tmp_path / "frames"
    d.mkdir()
    for k in reversed(range(len(FRAME_COLOURS))):  # creation order must not matter
        Image.new("RGB", (20, 10), FRAME_COLOURS[k]).save(d / f"frame_{k:03d}.png")
    (d / "notes.txt").write_text("not a frame")
    return d


def test_frame_directory_default_fps(frame_dir):
    assert probe_video(frame_dir) == (6.0, 6, (20, 10))
    assert check_video(str(frame_dir)) == 6.0
    clip = load_video(str(frame_dir), fps=1.0)
    assert clip.timestamps == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert [im.getpixel((5, 5)) for im in clip.frames] == FRAME_COLOURS
    assert clip.duration == 6.0 and clip.fps == 1.0


def test_frame_directory_dict_with_fps(frame_dir):
    ref = {"path": str(frame_dir), "fps": 3.0}
    assert check_video(ref) == pytest.approx(2.0)
    clip = load_video(ref, fps=1.5, max_frames=16)  # wanted 0, 2/3, 4/3 s -> frames 0, 2, 4
    assert clip.timestamps == pytest.approx([0.0, 2 / 3, 4 / 3])
    assert [im.getpixel((0, 0)) for im in clip.frames] == [FRAME_COLOURS[k] for k in (0, 2, 4)]


def test_frame_list(frame_dir):
    paths = [str(frame_dir / f"frame_{k:03d}.png") for k in (5, 3, 1)]  # list order, not name order
    clip = load_video({"frames": paths, "fps": 2.0}, fps=2.0)
    assert clip.timestamps == [0.0, 0.5, 1.0]
    assert [im.getpixel((0, 0)) for im in clip.frames] == [FRAME_COLOURS[k] for k in (5, 3, 1)]
    assert check_video({"frames": paths}) == 3.0  # default 1 fps
    assert "3 images" in describe_video({"frames": paths})


# --------------------------------------------------------------------------- errors

ALL_READERS = (check_video, probe_video, load_video)


def assert_data_error(ref, *fragments: str, readers=ALL_READERS) -> None:
    for read in readers:
        with pytest.raises(DataError) as info:
            read(ref)
        for fragment in fragments:
            assert fragment in str(info.value), (read.__name__, str(info.value))


def test_missing_file(tmp_path):
    path = tmp_path / "nope.mp4"
    assert_data_error(path, "video not found", str(path))
    assert_data_error({"path": str(path), "fps": 2.0}, "video not found", str(path))


def test_empty_directory(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    assert_data_error(tmp_path, "no frame images", str(tmp_path))


def test_not_a_video(tmp_path):
    path = tmp_path / "text.mp4"
    path.write_text("this is not a video\n" * 20)
    assert_data_error(path, "not a readable video", str(path))


def test_truncated_video(tmp_path, mp4):
    path = tmp_path / "cut.mp4"
    path.write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 3])
    assert_data_error(path, str(path))


def test_no_video_stream(tmp_path):
    sf = pytest.importorskip("soundfile")
    path = tmp_path / "audio.mp4"
    sf.write(path, np.zeros(800, np.float32), 8000, format="WAV")
    assert_data_error(path, "no video stream", str(path))


def test_not_a_file_or_directory(tmp_path):
    path = tmp_path / "fifo.mp4"
    os.mkfifo(path)
    assert_data_error(path, "not a file or a directory", str(path))


def test_too_long(mp4, frame_dir):
    with pytest.raises(DataError, match=r"video too long: .*square\.mp4 is 4\.0 s, more than max_seconds=3$"):
        check_video(mp4, max_seconds=3)
    with pytest.raises(DataError, match="video too long"):
        load_video(mp4, max_seconds=3.5)
    with pytest.raises(DataError, match=r"video too long: .*frames is 6\.0 s, more than max_seconds=5\.5"):
        load_video(frame_dir, max_seconds=5.5)


def test_bad_dict_refs(frame_dir):
    assert_data_error({"fps": 2.0}, "needs 'path'", "'fps': 2.0")
    assert_data_error({"path": str(frame_dir), "fps": -1}, "'fps' must be a positive number", str(frame_dir))
    assert_data_error({"frames": []}, "non-empty list")
    assert_data_error(42, "invalid video reference 42")


def test_missing_frame_in_list(frame_dir):
    missing = frame_dir / "gone.png"
    ref = {"frames": [str(frame_dir / "frame_000.png"), str(missing)], "fps": 1.0}
    assert_data_error(ref, str(missing), readers=(check_video, load_video))


def test_corrupt_frame_image(frame_dir):
    (frame_dir / "frame_002.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"frame_002\.png"):
        load_video(frame_dir)


# --------------------------------------------------------------------------- write failures


def test_write_video_rejects_odd_size_without_leaving_files(tmp_path):
    clip = moving_square_clip(size=(63, 48))
    with pytest.raises(ValueError, match="even frame size"):
        write_video(clip, tmp_path / "odd.mp4")
    assert os.listdir(tmp_path) == []


def test_write_video_removes_partial_file_on_encoder_failure(tmp_path, monkeypatch):
    target = tmp_path / "v.mp4"
    target.write_bytes(b"previous contents")
    calls = {"n": 0}
    real = video_write.to_rgb

    def failing(im):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom")
        return real(im)

    monkeypatch.setattr(video_write, "to_rgb", failing)
    with pytest.raises(RuntimeError, match="boom"):
        write_video(moving_square_clip(), target)
    assert os.listdir(tmp_path) == ["v.mp4"]
    assert target.read_bytes() == b"previous contents"
