"""``temporal_iou`` reward: temporal grounding in video.  Score in [0, 1].

Gold (``sample["answer"]``): ``[start, end]`` in seconds (two numbers with
``0 <= start < end``), or a string in any form accepted below.

**Prediction**: an interval is looked for in
:func:`~mmrft.rewards.extract.extract_answer` of the completion, and, if none
is found there, in the whole text after the last ``</think>`` (a completion
that stops inside ``<think>`` scores 0.0).  Parsing rule, first match wins:

1. **A range**: two times joined by ``-``, ``–``, ``—``, ``~``, ``,``, "to",
   "until", "till", "through" or "and", the first such pair in the text:
   ``[3.5, 7.0]``, ``3.5 - 7.0s``, ``3.5s-7s``, "from 3.5 to 7 seconds",
   "between 3.5 and 7 s", ``00:03.5-00:07``, ``0:01:05 to 0:01:10``.
2. **Exactly two times** in the text, in order ("starts at 3.5 s and ends at
   7 s", ``{"start": 3.5, "end": 7}``); any other count -> no interval.

A time is seconds (``3``, ``3.5``, ``.5``) or a clock stamp ``m:ss(.f)`` /
``h:mm:ss(.f)``, not glued to letters (``1e9``, ``3rd``, ``t2`` are not
times).  A unit after a number — s/sec/second(s) or min/mins/minute(s) —
scales it; a unit written only after the second number applies to both
("from 1 to 2 minutes" = 60–120 s).  Signs are not read (times are
non-negative).

**Score**: ``|P ∩ G| / |P ∪ G|`` of the two intervals; an interval with
``end < start`` scores 0.0, a zero-length one overlaps nothing.  If
``metadata["iou_threshold"]`` is set the score is 1.0 when IoU >= threshold,
else 0.0.  A malformed gold or threshold raises ``ValueError``.
"""

from __future__ import annotations

import math
import re
from typing import Optional, Tuple

from mmrft.rewards.detection import after_think
from mmrft.rewards.extract import extract_answer
from mmrft.rewards.grounding import optional_threshold, sample_metadata
from mmrft.rewards.registry import register_reward

__all__ = ["temporal_iou_reward", "parse_interval", "interval_iou"]

Interval = Tuple[float, float]

_T = r"(?:\d{1,2}:)?\d{1,3}:\d{1,2}(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+"
_U = r"seconds?|secs?|s|minutes?|mins?"
_RANGE_RE = re.compile(
    rf"(?<![\w.:])(?P<a>{_T})(?:\s*(?P<ua>{_U})\b)?(?![\w:])"
    rf"\s*(?:-|–|—|~|,|\bto\b|\buntil\b|\btill\b|\bthrough\b|\band\b)\s*"
    rf"(?P<b>{_T})(?:\s*(?P<ub>{_U})\b)?(?![\w:])",
    re.IGNORECASE,
)
_TIME_RE = re.compile(rf"(?<![\w.:])(?P<t>{_T})(?:\s*(?P<u>{_U})\b)?(?![\w:])", re.IGNORECASE)


def _seconds(tok: str) -> float:
    if ":" not in tok:
        return float(tok)
    parts = tok.split(":")
    value = 0.0
    for p in parts:
        value = value * 60.0 + float(p)
    return value


def _scale(unit: Optional[str]) -> Optional[float]:
    if not unit:
        return None
    return 60.0 if unit.lower().startswith("m") else 1.0


def _interval(a: str, ua: Optional[str], b: str, ub: Optional[str]) -> Interval:
    sb = _scale(ub) or 1.0
    sa = _scale(ua) or sb
    # clock stamps are absolute: units do not rescale them
    start = _seconds(a) * (1.0 if ":" in a else sa)
    end = _seconds(b) * (1.0 if ":" in b else sb)
    return start, end


def parse_interval(text: str) -> Optional[Interval]:
    """``(start, end)`` in seconds from ``text`` (see the module docstring), or ``None``."""
    if not isinstance(text, str):
        return None
    m = _RANGE_RE.search(text)
    if m:
        return _interval(m.group("a"), m.group("ua"), m.group("b"), m.group("ub"))
    times = []
    for t in _TIME_RE.finditer(text):
        times.append(t)
        if len(times) > 2:
            return None
    if len(times) == 2:
        (a, b) = times
        return _interval(a.group("t"), a.group("u"), b.group("t"), b.group("u"))
    return None


def interval_iou(p: Interval, g: Interval) -> float:
    """1-D IoU; 0.0 for reversed, non-finite or non-overlapping intervals."""
    (ps, pe), (gs, ge) = p, g
    if not all(math.isfinite(v) for v in (ps, pe, gs, ge)) or pe < ps or ge < gs:
        return 0.0
    inter = min(pe, ge) - max(ps, gs)
    union = max(pe, ge) - min(ps, gs)
    if inter <= 0 or union <= 0:
        return 0.0
    return max(0.0, min(1.0, inter / union))


def _gold_interval(gold) -> Interval:
    if isinstance(gold, str):
        parsed = parse_interval(gold)
        if parsed is None:
            raise ValueError(f"cannot parse a gold interval from {gold!r}")
        gold = parsed
    if not isinstance(gold, (list, tuple)) or len(gold) != 2:
        raise ValueError(f"temporal gold must be [start, end], got {gold!r}")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in gold):
        raise ValueError(f"temporal gold must hold two numbers, got {gold!r}")
    s, e = float(gold[0]), float(gold[1])
    if not (math.isfinite(s) and math.isfinite(e) and 0.0 <= s < e):
        raise ValueError(f"temporal gold {gold!r} is invalid (need 0 <= start < end)")
    return s, e


@register_reward("temporal_iou")
def temporal_iou_reward(completion: str, sample: dict) -> float:
    """IoU of the predicted and gold time intervals (or 0/1 against ``metadata['iou_threshold']``)."""
    md = sample_metadata(sample)
    gold = _gold_interval(sample["answer"])
    threshold = optional_threshold(md)
    try:
        if not isinstance(completion, str):
            return 0.0
        answer = extract_answer(completion)
        pred = parse_interval(answer) if answer is not None else None
        if pred is None:
            rest = after_think(completion)
            pred = parse_interval(rest) if rest is not None else None
        if pred is None:
            return 0.0
        iou = interval_iou(pred, gold)
    except Exception:
        return 0.0
    if threshold is not None:
        return 1.0 if iou >= threshold else 0.0
    return iou
