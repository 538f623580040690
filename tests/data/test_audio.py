"""Tests for mmrft.data.audio: round trips, mono mixdown, resampling, embedded bytes, and every error path."""

from __future__ import annotations

import io
import os
import re

import numpy as np
import pytest
import soundfile as sf

import mmrft.data.audio as audio_mod
from mmrft.data.audio import check_audio, describe_audio, load_audio, write_audio
from mmrft.data.clips import AudioClip
from mmrft.errors import DataError


def _sine(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=1 << 17))
    return float(np.argmax(spectrum) * rate / (1 << 17))


def _wav_bytes(x: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


# ------------------------------------------------------------------ happy paths


def test_round_trip_16_bit(tmp_path):
    x = _sine(440, 0.5, 16000, amp=0.7)
    x[:10] = [1.0, -1.0, 0.0, 0.5, -0.5, 1e-5, -1e-5, 0.999, -0.999, 0.25]
    path = tmp_path / "a.wav"
    write_audio(AudioClip(x, 16000), path)
    info = sf.info(str(path))
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "PCM_16", 16000, 1)
    assert check_audio(path) == pytest.approx(0.5)
    clip = load_audio(str(path), rate=16000)
    assert clip.rate == 16000 and clip.samples.dtype == np.float32 and clip.samples.shape == x.shape
    np.testing.assert_allclose(clip.samples, x, atol=1.5 / 32768)
    assert clip.duration == pytest.approx(0.5)
    assert str(path) in clip.source
    assert sorted(os.listdir(tmp_path)) == ["a.wav"]  # no temp file left behind


def test_write_overwrites_and_clips_out_of_range(tmp_path):
    path = tmp_path / "a.wav"
    write_audio(AudioClip(np.zeros(100), 8000), path)
    write_audio(AudioClip(np.array([1.7, -3.0, 0.25], dtype=np.float32), 16000), path)
    clip = load_audio(path, rate=16000)
    np.testing.assert_allclose(clip.samples, [1.0, -1.0, 0.25], atol=1.5 / 32768)


def test_stereo_is_mixed_to_mono(tmp_path):
    left, right = _sine(300, 0.25, 16000, 0.6), np.full(4000, 0.2, dtype=np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(str(path), np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    clip = load_audio(path, rate=16000)
    assert clip.samples.ndim == 1 and len(clip.samples) == 4000
    np.testing.assert_allclose(clip.samples, (left + right) / 2, atol=1e-6)


def test_resample_44k_to_16k_keeps_frequency_and_duration(tmp_path):
    path = tmp_path / "cd.flac"
    sf.write(str(path), _sine(1000, 1.5, 44100), 44100)
    assert check_audio(path) == pytest.approx(1.5)
    clip = load_audio(path, rate=16000)
    assert clip.rate == 16000
    assert clip.duration == pytest.approx(1.5, abs=1e-3)
    assert _peak_hz(clip.samples, 16000) == pytest.approx(1000, abs=2)
    assert np.abs(clip.samples).max() == pytest.approx(0.5, abs=0.02)
    # and upwards
    up = load_audio(path, rate=48000)
    assert up.duration == pytest.approx(1.5, abs=1e-3) and _peak_hz(up.samples, 48000) == pytest.approx(1000, abs=2)


def test_embedded_bytes():
    data = _wav_bytes(_sine(500, 0.2, 8000), 8000)
    ref = {"bytes": data, "path": "clip.wav"}
    assert describe_audio(ref) == f"embedded audio ({len(data)} bytes, path 'clip.wav')"
    assert describe_audio({"bytes": data, "path": None}) == f"embedded audio ({len(data)} bytes)"
    assert check_audio(ref) == pytest.approx(0.2)
    clip = load_audio(ref, rate=16000)
    assert clip.duration == pytest.approx(0.2, abs=1e-3)
    assert _peak_hz(clip.samples, 16000) == pytest.approx(500, abs=3)
    # bytes may also come as a bytearray / memoryview (parquet readers); {"bytes": None, "path": p} is a path
    assert load_audio({"bytes": memoryview(data), "path": None}, rate=8000).samples.shape == (1600,)


def test_bytes_none_dict_is_a_path(tmp_path):
    path = tmp_path / "p.wav"
    write_audio(AudioClip(np.zeros(160), 16000), path)
    assert check_audio({"bytes": None, "path": str(path)}) == pytest.approx(0.01)
    assert describe_audio({"bytes": None, "path": str(path)}) == str(path)


# ------------------------------------------------------------------ errors


def _raises(match: str, fn, *args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    assert re.search(match, str(info.value)), str(info.value)
    return str(info.value)


@pytest.mark.parametrize("fn", [check_audio, lambda ref: load_audio(ref, rate=16000)])
def test_missing_file(tmp_path, fn):
    path = tmp_path / "nope.wav"
    msg = _raises("audio file not found", fn, str(path))
    assert str(path) in msg


@pytest.mark.parametrize("fn", [check_audio, lambda ref: load_audio(ref, rate=16000)])
def test_directory(tmp_path, fn):
    msg = _raises("audio path is not a file", fn, tmp_path)
    assert str(tmp_path) in msg


@pytest.mark.parametrize("fn", [check_audio, lambda ref: load_audio(ref, rate=16000)])
def test_text_file_renamed_wav(tmp_path, fn):
    path = tmp_path / "notes.wav"
    path.write_text("these are my notes, not a recording\n" * 20)
    msg = _raises("not a readable audio file", fn, path)
    assert str(path) in msg and "not recognised" in msg.lower()


@pytest.mark.parametrize("fn", [check_audio, lambda ref: load_audio(ref, rate=16000)])
def test_empty_file(tmp_path, fn):
    path = tmp_path / "empty.wav"
    path.touch()
    msg = _raises("empty audio file", fn, path)
    assert str(path) in msg and "0 bytes" in msg


def test_wav_with_no_samples(tmp_path):
    path = tmp_path / "silent.wav"
    sf.write(str(path), np.zeros(0, dtype=np.float32), 16000, subtype="PCM_16")
    for fn in (check_audio, lambda ref: load_audio(ref, rate=16000)):
        msg = _raises("empty audio", fn, path)
        assert str(path) in msg and "no samples" in msg


def test_too_long(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(str(path), np.zeros(45 * 1000, dtype=np.float32), 1000, subtype="PCM_16")
    assert check_audio(path) == pytest.approx(45.0)
    assert check_audio(path, max_seconds=45) == pytest.approx(45.0)
    expected = f"audio too long: {path} is 45.0 s, more than max_seconds=30"
    assert _raises("audio too long", check_audio, path, max_seconds=30) == expected
    assert _raises("audio too long", load_audio, path, rate=16000, max_seconds=30.0) == expected
    with pytest.raises(ValueError, match="max_seconds"):
        check_audio(path, max_seconds=0)


def test_embedded_errors():
    garbage = {"bytes": b"definitely not audio" * 8, "path": "x.wav"}
    msg = _raises("not a readable audio file", load_audio, garbage, rate=16000)
    assert "embedded audio (160 bytes, path 'x.wav')" in msg
    _raises(r"empty audio: embedded audio \(0 bytes", check_audio, {"bytes": b"", "path": None})
    data = _wav_bytes(np.zeros(3000, dtype=np.float32), 1000)
    msg = _raises("audio too long", check_audio, {"bytes": data, "path": None}, max_seconds=2)
    assert f"embedded audio ({len(data)} bytes) is 3.0 s, more than max_seconds=2" in msg


def test_invalid_refs():
    _raises("invalid audio reference", check_audio, 42)
    _raises("invalid audio reference", check_audio, {"path": None})
    _raises("invalid audio reference", check_audio, "")
    with pytest.raises(ValueError, match="rate"):
        load_audio("x.wav", rate=0)


def test_write_failure_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "out.wav"
    write_audio(AudioClip(np.full(100, 0.5), 16000), path)
    before = path.read_bytes()

    def boom(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(audio_mod.os, "fsync", boom)
    msg = _raises("cannot write audio", write_audio, AudioClip(np.zeros(16000), 16000), path)
    assert str(path) in msg and "No space left on device" in msg
    assert sorted(os.listdir(tmp_path)) == ["out.wav"]  # temp file removed
    assert path.read_bytes() == before  # old file untouched
    monkeypatch.undo()

    missing = tmp_path / "no-such-dir" / "x.wav"
    msg = _raises("cannot write audio", write_audio, AudioClip(np.zeros(10), 16000), missing)
    assert str(missing) in msg
    nan = AudioClip(np.array([0.0, np.nan], dtype=np.float32), 16000)
    _raises("non-finite", write_audio, nan, tmp_path / "nan.wav")
    assert sorted(os.listdir(tmp_path)) == ["out.wav"]
