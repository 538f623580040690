"""Prompt formats: a Sample becomes chat messages (images first, then the question and the format instruction),
and, for supervised cold start, a target completion in the same format the rewards check."""

from __future__ import annotations

import json
from typing import Any

R1_INSTRUCTION = "Think inside <think> </think>, then give the final answer inside <answer> </answer>."
PROMPT_FORMATS = ("r1", "plain")


def prompt_corpus(weight: int = 200) -> list[str]:
    """Text of the prompt formats, repeated `weight` times: for training tiny tokenizers (see models/tiny.py)."""
    return [R1_INSTRUCTION] * weight


def build_messages(prompt: str, num_images: int, fmt: str = "r1", system: str | None = None, *,
                   num_videos: int = 0, num_audios: int = 0, hints: list[str] = ()) -> list[dict]:
    """Chat messages in the `transformers` multimodal layout: `{"type": "image"}`, `{"type": "video"}` and
    `{"type": "audio"}` placeholders in that order, then `hints` (e.g. a video's timing) and the text."""
    if fmt not in PROMPT_FORMATS:
        raise ValueError(f"unknown prompt format {fmt!r}; expected one of {', '.join(PROMPT_FORMATS)}")
    text = prompt if fmt == "plain" else f"{prompt}\n{R1_INSTRUCTION}"
    if hints:
        text = "\n".join([*hints, text])
    content: list[dict] = [{"type": "image"} for _ in range(num_images)]
    content += [{"type": "video"} for _ in range(num_videos)]
    content += [{"type": "audio"} for _ in range(num_audios)]
    content.append({"type": "text", "text": text})
    messages: list[dict] = []
    if system is not None:
        messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
    messages.append({"role": "user", "content": content})
    return messages


def answer_to_text(answer: Any) -> str:
    """Gold answers as a model should write them: lists (boxes) as JSON, numbers and strings as-is."""
    if isinstance(answer, (list, tuple)):
        return json.dumps(list(answer))
    return str(answer)


def target_text(answer: Any, fmt: str = "r1", rationale: str = "") -> str:
    """The supervised target: `<think>rationale</think><answer>gold</answer>` (r1) or the bare answer (plain)."""
    gold = answer_to_text(answer)
    if fmt == "plain":
        return gold
    return f"<think>{rationale}</think><answer>{gold}</answer>"
