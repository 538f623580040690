"""Procedural audio tasks: counting beeps, comparing two pitches, timing a pause.

Every clip is mono, 16 kHz and at most :data:`MAX_SECONDS` long: pure sine tones with short linear fades
(:data:`FADE` seconds, so no clicks), amplitude at most 0.8, silence elsewhere and, at the highest difficulty, very
low Gaussian noise. The scene lists everything drawn -- ``events`` (``onset``/``duration`` in seconds,
``frequency`` in Hz, ``amplitude``), ``rate``, ``duration`` (of the clip), ``fade``, ``noise`` (its standard
deviation) and ``noise_seed`` -- and :func:`synthesise` turns it into samples deterministically, so the answer can
be re-derived from the scene alone. Times are whole milliseconds (whole samples at 16 kHz).

Difficulty 0 is meant to be learnable by a tiny randomly initialised model with a log-mel front end (10 ms hop)
after minutes of supervised training: long, loud, well separated events and large pitch differences. Higher
difficulties shorten the events and gaps, vary pitch and loudness, and add noise.

``audio_count_beeps`` (reward ``count``): "How many beeps do you hear?", answer a digit string.

0. 1-4 beeps of 200-250 ms, gaps 300-500 ms, one pitch (500-1000 Hz) per clip, amplitude 0.8.
1. 1-6 beeps of 150-250 ms, gaps 200-350 ms, each its own pitch (300-1500 Hz), amplitude 0.4-0.8.
2. 1-8 beeps of 150-200 ms, gaps 200-250 ms, pitches 300-2000 Hz, amplitude 0.25-0.8, noise.

``audio_higher_tone`` (reward ``choice``): two tones separated by silence; "A" if the first is higher, else "B";
``metadata["options"]`` is ``["the first", "the second"]``.

0. frequency ratio 2-3 (an octave or more), tones 500-700 ms, gap 300-500 ms, amplitude 0.8, lower tone 300-700 Hz.
1. ratio 1.25-1.6, tones 300-500 ms, gap 200-400 ms, amplitude 0.4-0.8 each, lower tone 300-1200 Hz.
2. ratio 1.06-1.2, tones 200-400 ms, gap 200-300 ms, amplitude 0.25-0.8 each, lower tone 400-2000 Hz, noise.

``audio_pause_length`` (reward ``numeric``): two beeps; the pause between them in seconds, written without
trailing zeros ("1", "1.5", "0.75"); ``metadata["abs_tol"]`` is half the grid step.

0. pause 0.5-2.5 s on a 0.5 s grid, beeps 250 ms, one pitch (500-1000 Hz), amplitude 0.8.
1. pause 0.25-2.5 s on a 0.25 s grid, beeps 150-300 ms, pitches 300-1500 Hz, amplitude 0.5-0.8.
2. pause 0.25-3 s on a 0.25 s grid, beeps 150-250 ms, pitches 300-2000 Hz, amplitude 0.3-0.8, noise.
"""

from __future__ import annotations

import math
import random
from typing import Sequence

import numpy as np

from mmrft.data.clips import AudioClip

from .base import SyntheticTask, register_task

RATE = 16_000
MAX_SECONDS = 4.0
FADE = 0.01  # linear fade in/out of every tone, seconds
MARGIN = (0.1, 0.3)  # silence before the first and after the last event, seconds
NOISE_STD = (0.002, 0.006)  # noise standard deviation at the highest difficulty
LETTERS = ("A", "B")
TONE_OPTIONS = ("the first", "the second")

__all__ = [
    "AudioCountBeepsTask",
    "AudioHigherToneTask",
    "AudioPauseLengthTask",
    "format_seconds",
    "synthesise",
    "tone",
]


# ------------------------------------------------------------------ synthesis


def tone(frequency: float, duration: float, amplitude: float, rate: int = RATE, fade: float = FADE) -> np.ndarray:
    """A sine tone of `duration` seconds with linear fades of `fade` seconds at both ends (float64)."""
    n = int(round(duration * rate))
    t = np.arange(n) / rate
    wave = amplitude * np.sin(2 * math.pi * frequency * t)
    n_fade = min(int(round(fade * rate)), n // 2)
    if n_fade > 0:
        ramp = np.arange(n_fade) / n_fade
        wave[:n_fade] *= ramp
        wave[n - n_fade :] *= ramp[::-1]
    return wave


def synthesise(scene: dict) -> np.ndarray:
    """The clip's float32 samples, from the scene alone (events summed, noise added, clipped to [-1, 1])."""
    rate = int(scene["rate"])
    out = np.zeros(int(round(scene["duration"] * rate)), dtype=np.float64)
    for ev in scene["events"]:
        wave = tone(ev["frequency"], ev["duration"], ev["amplitude"], rate, scene.get("fade", FADE))
        start = int(round(ev["onset"] * rate))
        end = min(start + len(wave), len(out))
        out[start:end] += wave[: end - start]
    if scene.get("noise", 0) > 0:
        out += np.random.default_rng(scene["noise_seed"]).normal(0.0, scene["noise"], len(out))
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def format_seconds(value: float) -> str:
    """A duration in seconds without trailing zeros: 1.0 -> "1", 1.5 -> "1.5", 0.75 -> "0.75"."""
    text = f"{round(value, 3):.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


# ------------------------------------------------------------------ scene helpers


def _ms(x: float) -> float:
    """Round seconds to whole milliseconds."""
    return round(x, 3)


def _layout(
    rng: random.Random, durations: Sequence[float], gaps: Sequence[float], frequencies: Sequence[float],
    amplitudes: Sequence[float], noise: float,
) -> dict:
    """A scene with events of the given durations back to back with the given gaps, random silent margins before
    and after, the whole at most MAX_SECONDS long."""
    durations = [_ms(d) for d in durations]
    gaps = [_ms(g) for g in gaps]
    content = sum(durations) + sum(gaps)
    spare = MAX_SECONDS - content
    if spare < 2 * MARGIN[0]:
        raise ValueError(f"audio scene of {content:.3f} s leaves no room for margins within {MAX_SECONDS} s")
    lead = _ms(rng.uniform(MARGIN[0], min(MARGIN[1], spare - MARGIN[0])))
    tail = _ms(rng.uniform(MARGIN[0], min(MARGIN[1], spare - lead)))
    events, t = [], lead
    for k, (dur, freq, amp) in enumerate(zip(durations, frequencies, amplitudes)):
        events.append({"onset": _ms(t), "duration": dur, "frequency": round(freq, 1), "amplitude": round(amp, 3)})
        t += dur + (gaps[k] if k < len(gaps) else 0.0)
    return {
        "events": events,
        "rate": RATE,
        "duration": min(MAX_SECONDS, _ms(t + tail)),
        "fade": FADE,
        "noise": round(rng.uniform(*NOISE_STD), 4) if noise else 0.0,
        "noise_seed": rng.randrange(2**31),
    }


def _uniforms(rng: random.Random, n: int, lo: float, hi: float) -> list[float]:
    return [rng.uniform(lo, hi) for _ in range(n)]


class _AudioTask(SyntheticTask):
    """Shared rendering of the audio tasks (``image_size`` is ignored)."""

    modality = "audio"
    difficulties = range(3)

    def render(self, scene: dict, image_size: int) -> AudioClip:
        return AudioClip(synthesise(scene), int(scene["rate"]))


# ------------------------------------------------------------------ tasks

# difficulty -> (max count, beep duration range, gap range, pitch range, one pitch per clip, amplitude range)
_BEEP_LEVELS = {
    0: (4, (0.2, 0.25), (0.3, 0.5), (500, 1000), True, (0.8, 0.8)),
    1: (6, (0.15, 0.25), (0.2, 0.35), (300, 1500), False, (0.4, 0.8)),
    2: (8, (0.15, 0.2), (0.2, 0.25), (300, 2000), False, (0.25, 0.8)),
}


@register_task("audio_count_beeps")
class AudioCountBeepsTask(_AudioTask):
    name = "audio_count_beeps"
    reward = "count"

    def sample_scene(self, rng: random.Random, difficulty: int, image_size: int) -> dict:
        max_k, dur, gap, pitch, one_pitch, amp = _BEEP_LEVELS[difficulty]
        k = rng.randint(1, max_k)
        freqs = [rng.uniform(*pitch)] * k if one_pitch else _uniforms(rng, k, *pitch)
        return _layout(rng, _uniforms(rng, k, *dur), _uniforms(rng, k - 1, *gap), freqs, _uniforms(rng, k, *amp),
                       noise=difficulty >= 2)

    def prompt(self, scene: dict) -> str:
        return "How many beeps do you hear?"

    def rationale(self, scene: dict) -> str:
        """Grounded, like `count`'s list of places: when each beep starts (0.1 s), e.g. "beeps at 0.2 0.8 1.5";
        the count is then the number of times listed."""
        return "beeps at " + " ".join(f"{ev['onset']:.1f}" for ev in scene["events"])

    def solve(self, scene: dict) -> str:
        return str(len(scene["events"]))


# difficulty -> (ratio range, tone duration range, gap range, lower-tone range, amplitude range)
_TONE_LEVELS = {
    0: ((2.0, 3.0), (0.5, 0.7), (0.3, 0.5), (300, 700), (0.8, 0.8)),
    1: ((1.25, 1.6), (0.3, 0.5), (0.2, 0.4), (300, 1200), (0.4, 0.8)),
    2: ((1.06, 1.2), (0.2, 0.4), (0.2, 0.3), (400, 2000), (0.25, 0.8)),
}


@register_task("audio_higher_tone")
class AudioHigherToneTask(_AudioTask):
    name = "audio_higher_tone"
    reward = "choice"

    def sample_scene(self, rng: random.Random, difficulty: int, image_size: int) -> dict:
        ratio, dur, gap, low_range, amp = _TONE_LEVELS[difficulty]
        low = round(rng.uniform(*low_range), 1)
        high = math.ceil(low * rng.uniform(*ratio) * 10) / 10  # rounding up keeps the ratio inside its band
        freqs = [low, high] if rng.random() < 0.5 else [high, low]
        return _layout(rng, _uniforms(rng, 2, *dur), _uniforms(rng, 1, *gap), freqs, _uniforms(rng, 2, *amp),
                       noise=difficulty >= 2)

    def prompt(self, scene: dict) -> str:
        lines = ["Which tone is higher, the first or the second?"]
        lines += [f"{letter}. {opt}" for letter, opt in zip(LETTERS, TONE_OPTIONS)]
        return "\n".join(lines)

    def rationale(self, scene: dict) -> str:
        return "compare the pitch of the two tones"

    def solve(self, scene: dict) -> str:
        first, second = (ev["frequency"] for ev in scene["events"])
        if first == second:
            raise ValueError("audio_higher_tone: the two tones have the same frequency")
        return LETTERS[0] if first > second else LETTERS[1]

    def extra_metadata(self, scene: dict, image_size: int) -> dict:
        return {"options": list(TONE_OPTIONS)}


# difficulty -> (grid step, pause range, beep duration range, pitch range, one pitch, amplitude range)
_PAUSE_LEVELS = {
    0: (0.5, (0.5, 2.5), (0.25, 0.25), (500, 1000), True, (0.8, 0.8)),
    1: (0.25, (0.25, 2.5), (0.15, 0.3), (300, 1500), False, (0.5, 0.8)),
    2: (0.25, (0.25, 3.0), (0.15, 0.25), (300, 2000), False, (0.3, 0.8)),
}


@register_task("audio_pause_length")
class AudioPauseLengthTask(_AudioTask):
    name = "audio_pause_length"
    reward = "numeric"

    def sample_scene(self, rng: random.Random, difficulty: int, image_size: int) -> dict:
        step, (lo, hi), dur, pitch, one_pitch, amp = _PAUSE_LEVELS[difficulty]
        pause = step * rng.randint(round(lo / step), round(hi / step))
        freqs = [rng.uniform(*pitch)] * 2 if one_pitch else _uniforms(rng, 2, *pitch)
        scene = _layout(rng, _uniforms(rng, 2, *dur), [pause], freqs, _uniforms(rng, 2, *amp), noise=difficulty >= 2)
        scene["grid"] = step
        return scene

    def prompt(self, scene: dict) -> str:
        return "How long is the pause between the two beeps, in seconds?"

    def rationale(self, scene: dict) -> str:
        return "time the silence between the two beeps"

    def solve(self, scene: dict) -> str:
        first, second = scene["events"]
        return format_seconds(second["onset"] - (first["onset"] + first["duration"]))

    def extra_metadata(self, scene: dict, image_size: int) -> dict:
        return {"abs_tol": scene["grid"] / 2}
