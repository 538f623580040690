"""Finding the tool calls in one assistant turn.

The format is Qwen's (Qwen2.5 / Qwen3 chat templates, Hermes-style), one JSON object per tag, several tags allowed:

    <tool_call>
    {"name": "zoom_in", "arguments": {"bbox_2d": [10, 20, 200, 240]}}
    </tool_call>

Accepted variations seen in real model output: `"parameters"` instead of `"arguments"`; the arguments given as a
JSON *string* holding the object (OpenAI style); missing or `null` arguments (a call without arguments); a
```` ```json ```` fence inside the tags; any whitespace around the JSON. Everything else that is wrong with a block
(malformed JSON, text after the object, no name, arguments that are not an object, a `<tool_call>` never closed or
followed by another `<tool_call>` before its `</tool_call>`) gives a `ToolCallError` in the block's place, so the
model can be told what to fix. `parse_tool_calls` never raises.

Every tag in the text counts, including one inside `<think>…</think>`: a model that writes a call in its reasoning
has made a call.
"""

from __future__ import annotations

import json
import re
from typing import Union

from mmrft.tools.base import ToolCall, ToolCallError

__all__ = ["CALL_CLOSE", "CALL_OPEN", "parse_tool_calls"]

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"

_FENCE_RE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?\s*```$", re.DOTALL)
_MAX_SHOWN = 80  # characters of the offending JSON quoted back in an error message


def parse_tool_calls(text: str) -> list[Union[ToolCall, ToolCallError]]:
    """The tool calls in `text`, in order: a `ToolCall` per good block, a `ToolCallError` per bad one; `[]` when
    the text has no `<tool_call>` (the model answered instead)."""
    if not isinstance(text, str):
        return []
    out: list[Union[ToolCall, ToolCallError]] = []
    pos = 0
    while True:
        start = text.find(CALL_OPEN, pos)
        if start < 0:
            return out
        body_start = start + len(CALL_OPEN)
        end = text.find(CALL_CLOSE, body_start)
        reopened = text.find(CALL_OPEN, body_start)
        if end < 0 or 0 <= reopened < end:
            stop = reopened if reopened >= 0 else len(text)
            out.append(ToolCallError(text[start:stop], "the <tool_call> tag is not closed with </tool_call>"))
            if reopened < 0:
                return out
            pos = reopened
            continue
        raw = text[start:end + len(CALL_CLOSE)]
        out.append(_parse_block(text[body_start:end], raw))
        pos = end + len(CALL_CLOSE)


def _parse_block(body: str, raw: str) -> Union[ToolCall, ToolCallError]:
    body = body.strip()
    fenced = _FENCE_RE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    if not body:
        return ToolCallError(raw, "the tool call is empty; write a JSON object with \"name\" and \"arguments\"")
    try:
        obj, end = json.JSONDecoder().raw_decode(body)
    except json.JSONDecodeError as e:
        return ToolCallError(raw, f"the tool call is not valid JSON ({e.msg} at character {e.pos}): "
                                  f"{_shorten(body)}")
    except RecursionError:
        return ToolCallError(raw, "the tool call's JSON is nested too deeply")
    if body[end:].strip():
        return ToolCallError(raw, f"unexpected text after the JSON object: {_shorten(body[end:].strip())}")
    if not isinstance(obj, dict):
        return ToolCallError(raw, f"the tool call must be a JSON object, got {_json_type(obj)}")
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        return ToolCallError(raw, "the tool call has no \"name\" (a non-empty string)")
    key = "arguments" if "arguments" in obj else "parameters"
    arguments = obj.get(key)
    if arguments is None:
        arguments = {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as e:
            return ToolCallError(raw, f"\"{key}\" is a string that is not valid JSON ({e.msg}): "
                                      f"{_shorten(arguments)}")
        except RecursionError:
            return ToolCallError(raw, f"\"{key}\" is nested too deeply")
    if not isinstance(arguments, dict):
        return ToolCallError(raw, f"\"{key}\" must be a JSON object, got {_json_type(arguments)}")
    return ToolCall(name=name.strip(), arguments=arguments, raw=raw)


def _json_type(obj) -> str:
    if isinstance(obj, bool):
        return "a boolean"
    if isinstance(obj, (int, float)):
        return "a number"
    if isinstance(obj, str):
        return "a string"
    if isinstance(obj, list):
        return "an array"
    return "null" if obj is None else type(obj).__name__


def _shorten(s: str) -> str:
    return s if len(s) <= _MAX_SHOWN else s[:_MAX_SHOWN] + "..."
