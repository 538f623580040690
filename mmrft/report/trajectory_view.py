"""The viewer's page data for a multi-turn row (`mmrft view`, `mmrft.report.viewer`): its turns, the tool calls each
assistant turn made (matched by parsing its `<tool_call>` blocks as the tool environment did), their answers (the
tool turn's `<tool_response>` blocks) and, for each successful `zoom_in`, the pixel box its answer names ("Zoomed in
on image k at [x1, y1, x2, y2] (pixels)") on the image it cropped — not the model's `bbox_2d`, whose convention
depends on the model family. `images` is the viewer's image table (`add(path) -> id`)."""

from __future__ import annotations

import json
import math
import re
from typing import Any, Optional

from mmrft.tools.parsing import parse_tool_calls


def _text(x: Any) -> str:
    return x if isinstance(x, str) else json.dumps(x, ensure_ascii=False)


_RESPONSE_OPEN, _RESPONSE_CLOSE = "<tool_response>\n", "\n</tool_response>"  # mmrft.tools.format_tool_response
_ZOOMED = re.compile(r"Zoomed in on image (\d{1,9}) at \[([^\]]{0,200})\] \(pixels\)")  # mmrft.tools.vision


def trajectory_view(r: dict, originals: list[str], images) -> dict:
    """A multi-turn row's turns for the page: assistant turns with their calls (each `zoom_in` that succeeded with
    the pixel box its answer names, when it names one), tool turns with their returned images (ids into the image
    table) and the number of their first image in the trajectory's numbering (originals first)."""
    calls = [c if isinstance(c, dict) else {} for c in _list(r.get("calls"))]
    turns = [t for t in r["turns"] if isinstance(t, dict)]
    # calls -> assistant turns: each turn made the calls its <tool_call> blocks parse to, the last assistant turn the
    # rest (none when a token limit cut it, though its text may hold a whole block). Counts that do not add up mean
    # another format (an environment of one's own): the calls are then listed after the turns, with no boxes.
    said = {i: len(parse_tool_calls(_text(t.get("text") or ""))) for i, t in enumerate(turns)
            if t.get("role") == "assistant"}
    last = max(said, default=-1)
    counts = {i: n for i, n in said.items() if i != last}
    if last >= 0:
        counts[last] = len(calls) - sum(counts.values())
    matched = last >= 0 and 0 <= counts[last] <= said[last]
    returned = [p for t in turns if t.get("role") == "tool" for p in _list(t.get("images"))]
    out: list[dict] = []
    pos, number = 0, len(originals)
    for i, t in enumerate(turns):
        role = str(t.get("role", ""))
        turn: dict = {"role": role, "text": _text(t.get("text") or "")}
        if role == "tool":
            ids = [images.add(p) for p in _list(t.get("images"))]
            turn.update(images=ids, first=number)
            number += len(ids)
        if matched and role == "assistant":
            mine = calls[pos:pos + counts[i]]
            pos += len(mine)
            after = turns[i + 1] if i + 1 < len(turns) and turns[i + 1].get("role") == "tool" else None
            answers = _responses(_text(after.get("text") or ""), len(mine)) if after else [None] * len(mine)
            turn["calls"] = [_call(c, a, originals, returned, images) for c, a in zip(mine, answers)]
        out.append(turn)
    result = {"turns": out, "end": None if r.get("end") is None else str(r.get("end"))}
    if not matched:
        result["calls"] = [_call(c, None, originals, returned, images) for c in calls]
    return result


def _list(x: Any) -> list:
    return x if isinstance(x, list) else []


def _responses(text: str, n: int) -> list[Optional[str]]:
    """The answers of a tool turn's `n` calls: its `<tool_response>` blocks (`[None] * n` when they do not split into
    `n`; one call's answer is the whole text when it is not wrapped)."""
    if text.startswith(_RESPONSE_OPEN) and text.endswith(_RESPONSE_CLOSE) and \
            len(text) >= len(_RESPONSE_OPEN) + len(_RESPONSE_CLOSE):
        parts = text[len(_RESPONSE_OPEN):-len(_RESPONSE_CLOSE)].split(_RESPONSE_CLOSE + "\n" + _RESPONSE_OPEN)
        if len(parts) == n:
            return parts
    return [text] if n == 1 else [None] * n


def _call(c: dict, answer: Optional[str], originals: list[str], returned: list, images) -> dict:
    name = c.get("name")
    out = {"name": None if name is None else str(name), "arguments": c.get("arguments"),
           "error": None if c.get("error") is None else str(c.get("error")), "box": None}
    if name == "zoom_in" and out["error"] is None and answer:
        out["box"] = _zoom_box(answer, originals, returned, images)
    return out


def _zoom_box(answer: str, originals: list[str], returned: list, images) -> Optional[dict]:
    """The pixel box a `zoom_in` answer names and the image it is on (`None` when it names none or no such image)."""
    m = _ZOOMED.search(answer)
    if not m:
        return None
    try:
        px = [float(v) for v in m.group(2).split(",")]
    except ValueError:
        return None
    k = int(m.group(1))
    if len(px) != 4 or not all(math.isfinite(v) for v in px) or px[2] <= px[0] or px[3] <= px[1]:
        return None
    if k < len(originals):
        image = originals[k]
    elif k - len(originals) < len(returned):
        image = images.add(returned[k - len(originals)])
    else:
        return None
    return {"index": k, "image": image, "px": [int(v) if v.is_integer() else v for v in px]}
