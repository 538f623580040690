"""``gui`` reward: one GUI-agent action (click / type / scroll).  Score 0.0 or 1.0.

Gold (``sample["answer"]``), a dict:

* ``{"action": "click", "bbox": [x1, y1, x2, y2]}`` — pixels unless
  ``metadata["answer_box_format"]`` says otherwise (as in ``iou``);
* ``{"action": "type", "text": "hello world"}``;
* ``{"action": "scroll", "direction": "up" | "down" | "left" | "right"}``.

**Where the answer is**: the last ``<answer>`` block, else the text after the
last ``</think>``, else the whole completion (no answer / truncated inside
``<think>`` -> 0.0).  If several actions are written there, the one that
*ends* last counts (an action quoted inside another, as in
``type("click(1, 2)")``, does not).

**Accepted actions** (names case-insensitive; ``tap``/``left_click`` mean
click, ``input``/``type_text``/``write`` mean type):

* ``click(x, y)``, ``click(x=120, y=45)``, ``click((120, 45))``, ``click([120, 45])``;
  four numbers (``click(start_box='<|box_start|>(10,20),(30,40)<|box_end|>')``,
  ``click([10, 20, 30, 40])``) mean the centre of that box;
* ``type("text")``, ``type('text')``, ``type(text='...')``, ``type(content="...")``
  (backslash escapes ``\\n``, ``\\t``, ``\\"``, ``\\'`` understood);
* ``scroll(down)``, ``scroll("down")``, ``scroll(direction='down')`` — the
  first of up/down/left/right inside the parentheses;
* JSON / Python dict: ``{"action": "click", "coordinate": [x, y]}`` (also
  ``"action_type"``; coordinates under ``coordinate``/``coordinates``/``point``/
  ``position``, or ``x`` and ``y``), ``{"action": "type", "text": "..."}``
  (or ``content``/``value``), ``{"action": "scroll", "direction": "down"}``.

**Scoring**: 1.0 when the action types agree and — click: the point, converted
with ``metadata["box_format"]`` / ``metadata["image_size"]`` exactly as ``iou``
converts boxes (pixel / norm1 / norm1000), lies inside the gold box, edges
included; type: the texts are equal after case-folding and whitespace
collapsing; scroll: same direction.  Else 0.0.

A malformed gold or metadata raises ``ValueError``; model output never raises.
"""

from __future__ import annotations

import ast
import json
import math
import re
from typing import Optional, Tuple

from mmrft.rewards.detection import answer_region
from mmrft.rewards.grounding import _gold_box, box_convention, model_image_size, sample_metadata, to_pixels
from mmrft.rewards.registry import register_reward

__all__ = ["gui_reward", "parse_action", "ACTIONS", "DIRECTIONS"]

ACTIONS = ("click", "type", "scroll")
DIRECTIONS = ("up", "down", "left", "right")
_ALIASES = {
    "click": "click", "tap": "click", "left_click": "click", "left_single": "click",
    "type": "type", "input": "type", "type_text": "type", "write": "type",
    "scroll": "scroll",
}  # fmt: skip

Action = Tuple[str, object]  # ("click", (x, y)) | ("type", str) | ("scroll", str)

_N = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_CALL_RE = re.compile(r"\b(" + "|".join(sorted(_ALIASES, key=len, reverse=True)) + r")\s*\(", re.IGNORECASE)
_NUM_RE = re.compile(rf"(?<![\w.]){_N}")
_KW_RE = re.compile(rf"\b([xy])\s*[=:]\s*[\"']?({_N})")
_STRING_RE = re.compile(r"\"((?:[^\"\\\n]|\\.){0,2000})\"|'((?:[^'\\\n]|\\.){0,2000})'")
_ESCAPE_RE = re.compile(r"\\(.)")
_DIRECTION_RE = re.compile(r"\b(up|down|left|right)\b", re.IGNORECASE)
_OBJECT_RE = re.compile(r"\{[^{}]{0,4000}\}")
_MAX_ARGS = 2100  # characters of a call's argument list that are looked at
_MAX_CANDIDATES = 64  # calls / objects (the last ones in the text) that are parsed
_ESCAPES = {"n": "\n", "t": "\t"}


def _unescape(s: str) -> str:
    return _ESCAPE_RE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), s)


def _call_args(text: str, open_paren: int) -> Tuple[str, int]:
    """Argument text of the call whose ``(`` is at ``open_paren`` and the index after its ``)``.

    Quoted strings are skipped; an unclosed call yields ``("", -1)``.
    """
    depth, i, n = 0, open_paren, min(len(text), open_paren + _MAX_ARGS)
    quote = None
    while i < n:
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return text[open_paren + 1 : i], i + 1
        i += 1
    return "", -1


def _point(args: str) -> Optional[Tuple[float, float]]:
    kw = dict((k.lower(), v) for k, v in _KW_RE.findall(args))
    if "x" in kw and "y" in kw:
        return float(kw["x"]), float(kw["y"])
    nums = [float(v) for v in _NUM_RE.findall(args)]
    if len(nums) == 2:
        return nums[0], nums[1]
    if len(nums) == 4:
        return (nums[0] + nums[2]) / 2.0, (nums[1] + nums[3]) / 2.0
    return None


def _first_string(args: str) -> Optional[str]:
    m = _STRING_RE.search(args)
    if not m:
        return None
    return _unescape(m.group(1) if m.group(1) is not None else m.group(2))


def _from_call(name: str, args: str) -> Optional[Action]:
    kind = _ALIASES[name.lower()]
    if kind == "click":
        p = _point(args)
        return ("click", p) if p is not None else None
    if kind == "type":
        s = _first_string(args)
        return ("type", s) if s is not None else None
    d = _DIRECTION_RE.search(args)
    return ("scroll", d.group(1).lower()) if d else None


def _load_object(chunk: str):
    try:
        return json.loads(chunk)
    except (ValueError, RecursionError):
        pass
    try:
        return ast.literal_eval(chunk)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _number_pair(v) -> Optional[Tuple[float, float]]:
    if isinstance(v, str):
        return _point(v)
    if isinstance(v, (list, tuple)) and len(v) in (2, 4):
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            return _point(", ".join(str(float(x)) for x in v))
    return None


def _from_object(obj) -> Optional[Action]:
    if not isinstance(obj, dict):
        return None
    name = obj.get("action", obj.get("action_type"))
    if not isinstance(name, str) or name.strip().lower() not in _ALIASES:
        return None
    kind = _ALIASES[name.strip().lower()]
    if kind == "click":
        for key in ("coordinate", "coordinates", "point", "position", "bbox"):
            if key in obj:
                p = _number_pair(obj[key])
                return ("click", p) if p is not None else None
        x, y = obj.get("x"), obj.get("y")
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y)):
            return ("click", (float(x), float(y)))
        return None
    if kind == "type":
        text = next((obj[k] for k in ("text", "content", "value") if isinstance(obj.get(k), str)), None)
        return ("type", text) if text is not None else None
    d = obj.get("direction")
    return ("scroll", d.strip().lower()) if isinstance(d, str) and d.strip().lower() in DIRECTIONS else None


def parse_action(text: str) -> Optional[Action]:
    """The action that ends last in ``text`` (see the module docstring), or ``None``.

    Only the last :data:`_MAX_CANDIDATES` calls and ``{...}`` objects are looked at,
    so hostile inputs (``"click(" * 50_000``) cost linear time.
    """
    if not isinstance(text, str):
        return None
    best: Optional[Tuple[int, int, Action]] = None  # (end, -start, action)
    calls = list(_CALL_RE.finditer(text))[-_MAX_CANDIDATES:]
    for m in calls:
        args, end = _call_args(text, m.end() - 1)
        if end < 0:
            continue
        action = _from_call(m.group(1), args)
        if action is not None and (best is None or (end, -m.start()) > best[:2]):
            best = (end, -m.start(), action)
    objects = [m for m in _OBJECT_RE.finditer(text) if "action" in m.group().lower()][-_MAX_CANDIDATES:]
    for m in objects:
        action = _from_object(_load_object(m.group()))
        if action is not None and (best is None or (m.end(), -m.start()) > best[:2]):
            best = (m.end(), -m.start(), action)
    return best[2] if best else None


def _norm_text(s: str) -> str:
    return " ".join(s.split()).casefold()


def _gold_action(gold, md: dict, size):
    if not isinstance(gold, dict):
        raise ValueError(f"gui gold must be a dict with an 'action' key, got {gold!r}")
    kind = gold.get("action")
    if kind not in ACTIONS:
        raise ValueError(f"gui gold action must be one of {ACTIONS}, got {kind!r}")
    if kind == "click":
        if "bbox" not in gold:
            raise ValueError(f"gui click gold needs a 'bbox', got {gold!r}")
        return kind, _gold_box(gold["bbox"], md, size)
    if kind == "type":
        text = gold.get("text")
        if not isinstance(text, str):
            raise ValueError(f"gui type gold needs a 'text' string, got {gold!r}")
        return kind, _norm_text(text)
    direction = gold.get("direction")
    if not isinstance(direction, str) or direction.strip().lower() not in DIRECTIONS:
        raise ValueError(f"gui scroll gold needs a 'direction' in {DIRECTIONS}, got {gold!r}")
    return kind, direction.strip().lower()


@register_reward("gui")
def gui_reward(completion: str, sample: dict) -> float:
    """1.0 iff the predicted action matches the gold (click in box / same text / same direction)."""
    md = sample_metadata(sample)
    fmt, size = box_convention(md)
    kind, target = _gold_action(sample["answer"], md, size)
    try:
        region = answer_region(completion)
        action = parse_action(region) if region is not None else None
        if action is None or action[0] != kind:
            return 0.0
        if kind == "click":
            x, y = action[1]  # type: ignore[misc]
            px, py, _, _ = to_pixels((x, y, x, y), fmt, size, model_image_size(md))
            if not (math.isfinite(px) and math.isfinite(py)):
                return 0.0
            x1, y1, x2, y2 = target  # type: ignore[misc]
            return 1.0 if x1 <= px <= x2 and y1 <= py <= y2 else 0.0
        if kind == "type":
            return 1.0 if _norm_text(action[1]) == target else 0.0  # type: ignore[arg-type]
        return 1.0 if action[1] == target else 0.0
    except Exception:
        return 0.0
