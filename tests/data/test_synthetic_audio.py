"""Tests for mmrft.data.synthetic.audio: answers re-derived from the rendered waveform (not from the scene or
`solve`), clip limits, determinism, difficulty-0 easiness, and an end-to-end dataset written to disk."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import mmrft.data.synthetic.audio as audio_tasks  # noqa: F401  (registers the tasks)
from mmrft.data.audio import load_audio
from mmrft.data.clips import AudioClip
from mmrft.data.sources import load_samples
from mmrft.data.synthetic.base import SyntheticItem, generate_items, get_task, write_dataset
from mmrft.rewards.registry import get_reward

TASKS = {"audio_count_beeps": "count", "audio_higher_tone": "choice", "audio_pause_length": "numeric"}
N = 40
RATE = 16000
FRAME = 160  # 10 ms analysis frames
THRESHOLD = 0.03  # frame RMS above this is "sound"; quietest tone has RMS ~0.18, loudest noise ~0.006

_CACHE: dict = {}


def items(task: str, difficulty: int, n: int = N, seed: int = 3) -> list[SyntheticItem]:
    key = (task, difficulty, n, seed)
    if key not in _CACHE:
        _CACHE[key] = generate_items(task, n, seed=seed, difficulty=difficulty)
    return _CACHE[key]


ALL = [(t, d) for t in TASKS for d in (0, 1, 2)]


# ------------------------------------------------------------------ waveform analysis (independent of solve)


def bursts(x: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) sample ranges of the sounding regions, from a thresholded 10 ms frame-RMS envelope."""
    n = len(x) // FRAME
    rms = np.sqrt((x[: n * FRAME].astype(np.float64).reshape(n, FRAME) ** 2).mean(axis=1))
    active = np.concatenate([[False], rms > THRESHOLD, [False]])
    edges = np.flatnonzero(np.diff(active.astype(np.int8)))
    return [(int(a) * FRAME, int(b) * FRAME) for a, b in zip(edges[::2], edges[1::2])]


def peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=1 << 16))
    return float(np.argmax(spectrum) * RATE / (1 << 16))


def heard_answer(task: str, clip: AudioClip) -> str:
    """The answer a listener would give, from the samples alone."""
    found = bursts(clip.samples)
    if task == "audio_count_beeps":
        return str(len(found))
    assert len(found) == 2, found
    if task == "audio_higher_tone":
        first, second = (peak_hz(clip.samples[a:b]) for a, b in found)
        return "A" if first > second else "B"
    return f"{(found[1][0] - found[0][1]) / RATE:.3f}"


# ------------------------------------------------------------------ tests


def test_registry():
    for name, reward in TASKS.items():
        task = get_task(name)
        assert task.name == name and task.reward == reward and task.modality == "audio"
        assert list(task.difficulties) == [0, 1, 2]
        get_reward(reward)  # the reward exists


@pytest.mark.parametrize("task,difficulty", ALL)
def test_answer_matches_waveform(task, difficulty):
    for it in items(task, difficulty):
        clip = it.audio
        heard = heard_answer(task, clip)
        if task == "audio_pause_length":
            # fades shave up to ~10 ms off each side, frames quantise to 10 ms: far inside the tolerance
            assert abs(float(heard) - float(it.answer)) <= 0.03, (it.id, heard, it.answer)
            assert it.metadata["abs_tol"] == it.metadata["scene"]["grid"] / 2
        else:
            assert heard == it.answer, (it.id, heard, it.answer)


@pytest.mark.parametrize("task,difficulty", ALL)
def test_item_structure(task, difficulty):
    for it in items(task, difficulty):
        assert it.task == task and it.reward == TASKS[task]
        assert it.image is None and it.images == [] and it.video is None
        clip = it.audio
        assert isinstance(clip, AudioClip) and clip.rate == RATE and clip.samples.dtype == np.float32
        assert 0 < clip.duration <= 4.0
        assert np.abs(clip.samples).max() <= 1.0
        md = it.metadata
        assert md["difficulty"] == difficulty
        scene = json.loads(json.dumps(md))["scene"]  # JSON-serialisable, and the solution survives the trip
        assert get_task(task).solve(scene) == it.answer
        assert scene["duration"] == pytest.approx(clip.duration)
        assert all(0 < ev["amplitude"] <= 0.8 for ev in scene["events"])
        # rationale: a short hint that does not contain the answer; for beeps, the onset of each burst heard
        words = re.findall(r"[A-Za-z]+|\d+(?:\.\d+)?", md["rationale"])
        if task == "audio_count_beeps":
            said = [float(w) for w in md["rationale"].removeprefix("beeps at ").split()]
            heard = [a / RATE for a, _ in bursts(clip.samples)]
            assert len(said) == len(heard) and all(abs(x - y) <= 0.06 for x, y in zip(said, heard))
        else:
            assert 0 < len(words) <= 8 and it.answer not in words
        if task != "audio_higher_tone":  # (the choice prompt lists the letters)
            assert not re.search(r"\d", it.prompt)


@pytest.mark.parametrize("task", TASKS)
def test_tones_fade_in_and_out(task):
    """No clicks: each tone starts and ends near zero and only reaches full amplitude after the fade."""
    for it in items(task, 1)[:10]:
        x = it.audio.samples
        for ev in it.metadata["scene"]["events"]:
            a, b = round(ev["onset"] * RATE), round((ev["onset"] + ev["duration"]) * RATE)
            assert np.abs(x[a : a + 8]).max() <= 0.05 * ev["amplitude"]
            assert np.abs(x[b - 8 : b]).max() <= 0.05 * ev["amplitude"]
            assert np.abs(x[a : a + 80]).max() <= 0.5 * ev["amplitude"] + 1e-6  # 5 ms in: still fading
            assert np.abs(x[a + 160 : b - 160]).max() >= 0.95 * ev["amplitude"]
        assert np.abs(x[: round(it.metadata["scene"]["events"][0]["onset"] * RATE)]).max() == 0  # silence


def test_determinism():
    for task in TASKS:
        a = generate_items(task, 5, seed=11, difficulty=2)
        b = generate_items(task, 5, seed=11, difficulty=2)
        c = generate_items(task, 5, seed=12, difficulty=2)
        for x, y in zip(a, b):
            assert x.id == y.id and x.answer == y.answer and x.metadata == y.metadata
            np.testing.assert_array_equal(x.audio.samples, y.audio.samples)
        assert [x.metadata["scene"] for x in a] != [x.metadata["scene"] for x in c]
        # item i does not depend on how many items were asked for
        assert generate_items(task, 2, seed=11, difficulty=2)[1].metadata == a[1].metadata
        # render is a pure function of the scene
        np.testing.assert_array_equal(get_task(task).render(a[0].metadata["scene"], 112).samples, a[0].audio.samples)


def test_difficulty_zero_is_easy():
    beeps = items("audio_count_beeps", 0)
    assert {it.answer for it in beeps} == {"1", "2", "3", "4"}
    for it in beeps:
        events = it.metadata["scene"]["events"]
        assert len({ev["frequency"] for ev in events}) == 1
        assert all(ev["duration"] >= 0.2 and ev["amplitude"] == 0.8 for ev in events)
        assert all(b["onset"] - (a["onset"] + a["duration"]) >= 0.3 - 1e-9 for a, b in zip(events, events[1:]))
        assert it.metadata["scene"]["noise"] == 0
    tones = items("audio_higher_tone", 0)
    assert {it.answer for it in tones} == {"A", "B"}
    for it in tones:
        f1, f2 = (ev["frequency"] for ev in it.metadata["scene"]["events"])
        assert max(f1, f2) / min(f1, f2) >= 2.0
        assert it.metadata["options"] == ["the first", "the second"]
        assert it.prompt == "Which tone is higher, the first or the second?\nA. the first\nB. the second"
    pauses = items("audio_pause_length", 0)
    assert {it.answer for it in pauses} <= {"0.5", "1", "1.5", "2", "2.5"}
    assert len({it.answer for it in pauses}) >= 4
    assert all(it.metadata["abs_tol"] == 0.25 for it in pauses)


def test_harder_levels_widen_the_range():
    counts = {int(it.answer) for it in items("audio_count_beeps", 2)}
    assert max(counts) > 4
    ratios = []
    for it in items("audio_higher_tone", 2):
        f1, f2 = (ev["frequency"] for ev in it.metadata["scene"]["events"])
        ratios.append(max(f1, f2) / min(f1, f2))
    assert 1.06 <= min(ratios) and max(ratios) <= 1.2 + 1e-3
    answers = [it.answer for it in items("audio_pause_length", 2)]
    assert any(a.endswith((".25", ".75")) for a in answers)
    for a in answers:
        assert re.fullmatch(r"\d+(\.\d*[1-9])?", a), a  # no trailing zeros
        assert (float(a) / 0.25).is_integer()
    assert all(it.metadata["scene"]["noise"] > 0 for it in items("audio_count_beeps", 2))


def test_answers_score_with_their_rewards():
    for task, reward in TASKS.items():
        fn = get_reward(reward)
        for it in items(task, 1)[:5]:
            sample = {"answer": it.answer, "metadata": it.metadata}
            assert fn(f"<answer>{it.answer}</answer>", sample) == 1.0
    it = items("audio_pause_length", 1)[0]
    sample = {"answer": it.answer, "metadata": it.metadata}
    assert get_reward("numeric")(f"<answer>{float(it.answer) + 0.1}</answer>", sample) == 1.0
    assert get_reward("numeric")(f"<answer>{float(it.answer) + 0.25}</answer>", sample) == 0.0


def test_write_dataset_end_to_end(tmp_path):
    path = write_dataset("audio_count_beeps", 4, tmp_path, seed=0)
    assert sorted(p.name for p in (tmp_path / "audio").iterdir()) == [
        f"audio_count_beeps-d0-s0-{i:06d}.wav" for i in range(4)
    ]
    samples = load_samples(path)
    expected = generate_items("audio_count_beeps", 4, seed=0)
    assert len(samples) == 4
    for sample, it in zip(samples, expected):
        assert sample.id == it.id and sample.answer == it.answer and sample.images == []
        assert sample.modalities == ("audio",)
        (ref,) = sample.audios
        assert Path(ref).is_absolute() and Path(ref).is_file()
        clip = load_audio(ref, rate=16000)
        assert clip.rate == 16000 and len(clip.samples) == len(it.audio.samples)
        np.testing.assert_allclose(clip.samples, it.audio.samples, atol=1.5 / 32768)
        assert heard_answer("audio_count_beeps", clip) == sample.answer
