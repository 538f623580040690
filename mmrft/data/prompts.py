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


def tools_system_text(schemas: list[dict]) -> str:
    """The tool list as Qwen2.5's chat template writes it into the system message (Hermes style): the schemas (from
    `mmrft.tools.tool_schemas`) one JSON object a line in `<tools>` tags, then how to call one. For models whose
    chat template does not render `tools=` (Qwen2-VL's and Qwen2.5-VL's among them); `mmrft.tools.parse_tool_calls`
    reads the `<tool_call>` blocks it asks for."""
    lines = "\n".join(json.dumps(s, ensure_ascii=False) for s in schemas)
    return (
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n"
        f"<tools>\n{lines}\n</tools>\n\n"
        "For each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:\n"
        "<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>"
    )


_PROBE_TOOL = "mmrft_probe_tool_7f3a"


def template_renders_tools(processor_or_tokenizer: Any) -> bool:
    """Whether `apply_chat_template(messages, tools=...)` puts the tools into the prompt (a probe tool's name
    appears), or ignores them as the Qwen2-VL template does. A template that fails on `tools=` does not."""
    probe = [{"type": "function", "function": {"name": _PROBE_TOOL, "description": "probe",
                                               "parameters": {"type": "object", "properties": {}}}}]
    messages = [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]
    try:
        text = processor_or_tokenizer.apply_chat_template(messages, tools=probe, tokenize=False,
                                                          add_generation_prompt=True)
    except Exception:  # noqa: BLE001 - a template (or processor) without tools support
        return False
    if isinstance(text, list):
        text = "".join(str(t) for t in text)
    return _PROBE_TOOL in str(text)


def with_system_text(messages: list[dict], text: str) -> list[dict]:
    """`messages` with `text` added to the system message (one is created first when there is none)."""
    if messages and messages[0]["role"] == "system":
        first = messages[0]
        old = " ".join(c.get("text", "") for c in first["content"] if c.get("type") == "text")
        return [{"role": "system", "content": [{"type": "text", "text": f"{old}\n\n{text}" if old else text}]},
                *messages[1:]]
    return [{"role": "system", "content": [{"type": "text", "text": text}]}, *messages]


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
