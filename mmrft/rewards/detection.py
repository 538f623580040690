"""``detection`` reward: multi-object detection as an F1 score in [0, 1].

Gold (``sample["answer"]``): a list of ``{"label": str, "bbox": [x1, y1, x2, y2]}``
(``"bbox_2d"`` / ``"box"`` accepted for the box), possibly empty.  Gold boxes
are pixels unless ``metadata["answer_box_format"]`` names another convention.

**Where the answer is** (:func:`answer_region`): the content of the last
``<answer>`` block if there is one, else the text after the last ``</think>``,
else the whole completion.  A completion that stops inside ``<think>``, an empty
``<answer></answer>`` block or a blank completion is *no answer* and scores 0.0
(even against an empty gold).  If the answer block holds no box, the text after
``</think>`` is searched instead (as ``iou`` does).

**Parsing** (first form that yields boxes wins; ``[]`` counts as an explicit
empty prediction):

1. JSON, as Qwen2.5-VL writes it (markdown code fences and chatty text around
   the outermost ``[...]`` are ignored):
   ``[{"bbox_2d": [x1, y1, x2, y2], "label": "cat"}, ...]`` — box key
   ``bbox_2d``/``bbox``/``box``, label key ``label``/``name``/``category``/``class``.
2. ``{...}`` objects one at a time (truncated or single-quoted JSON, Python
   dicts): the box as :func:`mmrft.rewards.grounding.parse_box` reads it, the
   label from a quoted ``"label": "..."``; an unclosed last object is dropped.
3. Qwen2-VL reference tokens:
   ``<|object_ref_start|>cat<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>``.
4. Boxes in plain text, any number per line: ``red circle: [10, 20, 30, 40]``,
   ``- **cat** at (10,20),(30,40)``, "The cat is at [1, 2, 3, 4]. The dog is at
   [5, 6, 7, 8]."; a box is a ``[...]`` group or one or two ``(...)`` groups that
   :func:`~mmrft.rewards.grounding.parse_box` reads, and its label is the text
   between the previous box (or the line start) and it, after the last tag, ``:``,
   ``,`` or ``". "``, without bullets, numbering, ``*``, parenthesised remarks,
   an article and a trailing "is (located) at" / "box".

A box without a readable label (``[[1, 2, 3, 4]]``) still counts as a
(false-positive) prediction.  Coordinates follow ``metadata["box_format"]`` /
``metadata["image_size"]`` exactly as in :mod:`mmrft.rewards.grounding` (whose
``parse_box``, ``to_pixels`` and ``box_iou`` are reused); predicted boxes are
clipped to the image when its size is known.

**Labels** are compared normalised: case-folded, ``_``/``-`` read as spaces,
other punctuation dropped, whitespace collapsed, a leading ``a``/``an``/``the``
dropped (``"The Red_Circle"`` == ``"red circle"``).  No plural/synonym handling.

**Score**: greedy one-to-one matching — all (prediction, gold) pairs with equal
labels and ``IoU >= metadata["iou_threshold"]`` (default 0.5, and IoU > 0),
highest IoU first (ties: earlier prediction, then earlier gold) — then
``F1 = 2 * matches / (n_pred + n_gold)``.  Empty gold and empty prediction ->
1.0; exactly one of them empty -> 0.0.  Only the first :data:`MAX_PREDICTIONS`
predicted boxes are matched; the rest count as false positives.

A malformed gold or metadata raises ``ValueError``; model output never raises.
"""

from __future__ import annotations

import json
import math
import re
from typing import List, Optional, Sequence, Tuple

from mmrft.rewards.extract import answer_block
from mmrft.rewards.grounding import _gold_box, box_convention, box_iou, parse_box, sample_metadata, to_pixels
from mmrft.rewards.registry import register_reward

__all__ = [
    "detection_reward",
    "parse_detections",
    "match_detections",
    "normalize_label",
    "answer_region",
    "after_think",
    "MAX_PREDICTIONS",
]

Box = Tuple[float, float, float, float]
Detection = Tuple[str, Box]

DEFAULT_IOU_THRESHOLD = 0.5
MAX_PREDICTIONS = 500

_BOX_KEYS = ("bbox_2d", "bbox", "box")
_LABEL_KEYS = ("label", "name", "category", "class")
_OBJECT_RE = re.compile(r"\{[^{}]*\}")
_LABEL_RE = re.compile(r"[\"'](?:label|name|category|class)[\"']\s*:\s*[\"']([^\"'\n]{0,200})[\"']", re.IGNORECASE)
_REF_RE = re.compile(
    r"<\|object_ref_start\|>([^<]{0,200})<\|object_ref_end\|>\s*<\|box_start\|>([^<]{0,200})<\|box_end\|>"
)
_SPAN_RE = re.compile(
    r"\[[^\[\]\n]{0,200}\]"
    r"|\([^()\n]{0,100}\)(?:\s*(?:,|to|and|-|<\|box_end\|>|<\|box_start\|>)?\s*\([^()\n]{0,100}\))?"
)
_REMARK_RE = re.compile(r"\([^()]*\)")
_TAG_RE = re.compile(r"<[^<>]*>")
_FENCE_RE = re.compile(r"```[A-Za-z]*")
_LABEL_PUNCT_RE = re.compile(r"[^\w\s]|_")
_LEADING_RE = re.compile(r"^(?:\d+\s+)?(?:(?:a|an|the)\s+)?")
_TRAILING_RE = re.compile(
    r"\s*\b(?:(?:is|are)\s+)?(?:(?:located|found|positioned)\s+)?at$|\s*\b(?:bounding box|bbox|box)$"
)


# ----------------------------------------------------------------------------- where the answer is

_OPEN_THINK, _CLOSE_THINK = "<think>", "</think>"


def after_think(text: str) -> Optional[str]:
    """Text after the last ``</think>``; the whole text if there is no think block; ``None`` if truncated in one."""
    low = text.lower()
    close = low.rfind(_CLOSE_THINK)
    if close >= 0:
        return text[close + len(_CLOSE_THINK) :]
    if _OPEN_THINK in low:
        return None
    return text


def answer_region(text) -> Optional[str]:
    """The last ``<answer>`` block (raw), else :func:`after_think`; ``None`` for no/blank answer."""
    if not isinstance(text, str):
        return None
    block = answer_block(text)
    if block is not None:
        return block if block.strip() else None
    rest = after_think(text)
    return rest if rest is not None and rest.strip() else None


# ----------------------------------------------------------------------------- parsing


def normalize_label(label) -> str:
    """Case-fold, ``_``/``-``/punctuation -> space, collapse whitespace, drop a leading article."""
    if not isinstance(label, str):
        return ""
    s = _LABEL_PUNCT_RE.sub(" ", label.casefold())
    s = " ".join(s.split())
    return _LEADING_RE.sub("", s, count=1)


def _line_label(raw: str) -> str:
    # the label sits right before its box; tags separate like ":" does
    raw = _TAG_RE.sub(":", _REMARK_RE.sub(" ", raw[-200:])).rstrip(" \t:=*-\u2013\u2014")
    cut = max(raw.rfind(":"), raw.rfind(","), raw.rfind(". "), raw.rfind("\t"))
    s = normalize_label(raw[cut + 1 :])
    prev = None
    while prev != s:
        prev = s
        s = _TRAILING_RE.sub("", s).strip()
        s = _LEADING_RE.sub("", s, count=1)
    return s


def _box_of(value) -> Optional[Box]:
    if isinstance(value, (list, tuple)) and len(value) == 4:
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return tuple(float(v) for v in value)  # type: ignore[return-value]
        return None
    if isinstance(value, str):
        return parse_box(value)
    return None


def _from_json(text: str) -> Optional[List[Detection]]:
    """Detections from a JSON document, ``[]`` for an explicit empty list, ``None`` if not JSON/usable."""
    s = _FENCE_RE.sub("", text).strip()
    data = None
    for candidate in (s, s[s.find("[") : s.rfind("]") + 1] if "[" in s else ""):
        if not candidate:
            continue
        try:
            data = json.loads(candidate)
            break
        except (ValueError, RecursionError):
            continue
    if data is None:
        return None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        return None
    if not data:
        return []
    found: List[Detection] = []
    for item in data:
        if not isinstance(item, dict):
            continue
        box = next((_box_of(item[k]) for k in _BOX_KEYS if k in item), None)
        if box is None:
            continue
        label = next((item[k] for k in _LABEL_KEYS if isinstance(item.get(k), str)), "")
        found.append((normalize_label(label), box))
    return found or None


def _from_objects(text: str) -> List[Detection]:
    found: List[Detection] = []
    for m in _OBJECT_RE.finditer(text):
        chunk = m.group()
        box = parse_box(chunk)
        if box is None:
            continue
        lab = _LABEL_RE.search(chunk)
        found.append((normalize_label(lab.group(1)) if lab else "", box))
    return found


def _from_refs(text: str) -> List[Detection]:
    found: List[Detection] = []
    for m in _REF_RE.finditer(text):
        box = parse_box(m.group(2))
        if box is not None:
            found.append((normalize_label(m.group(1)), box))
    return found


def _from_lines(text: str) -> List[Detection]:
    found: List[Detection] = []
    for line in text.split("\n"):
        if "[" not in line and "(" not in line:
            continue
        prev_end = 0
        for m in _SPAN_RE.finditer(line):
            box = parse_box(m.group())
            if box is None:
                continue
            found.append((_line_label(line[prev_end : m.start()]), box))
            prev_end = m.end()
    return found


def _parse(text: str) -> Optional[List[Detection]]:
    """Like :func:`parse_detections`, but ``None`` when nothing was recognised (``[]``: explicit empty list)."""
    from_json = _from_json(text)
    if from_json is not None:
        return from_json
    for rule in (_from_objects, _from_refs, _from_lines):
        found = rule(text)
        if found:
            return found
    return None


def parse_detections(text: str) -> List[Detection]:
    """``[(normalised label, box), ...]`` in the text's own coordinates (see the module docstring)."""
    if not isinstance(text, str):
        return []
    return _parse(text) or []


# ----------------------------------------------------------------------------- matching


def match_detections(pred: Sequence[Detection], gold: Sequence[Detection], threshold: float) -> int:
    """Number of greedy one-to-one matches (same label, IoU >= threshold, IoU > 0, highest IoU first)."""
    pairs = []
    for pi, (plabel, pbox) in enumerate(pred[:MAX_PREDICTIONS]):
        for gi, (glabel, gbox) in enumerate(gold):
            if plabel != glabel:
                continue
            iou = box_iou(pbox, gbox)
            if iou > 0 and iou >= threshold:
                pairs.append((-iou, pi, gi))
    pairs.sort()
    used_p, used_g = set(), set()
    for _, pi, gi in pairs:
        if pi not in used_p and gi not in used_g:
            used_p.add(pi)
            used_g.add(gi)
    return len(used_p)


def _gold_detections(gold, md: dict, size) -> List[Detection]:
    if not isinstance(gold, (list, tuple)):
        raise ValueError(f"detection gold must be a list of {{'label', 'bbox'}} dicts, got {type(gold).__name__}")
    out: List[Detection] = []
    for item in gold:
        if not isinstance(item, dict):
            raise ValueError(f"detection gold items must be dicts with 'label' and 'bbox', got {item!r}")
        key = next((k for k in _BOX_KEYS if k in item), None)
        label = normalize_label(item.get("label"))
        if key is None or not label:
            raise ValueError(f"detection gold item needs a non-empty 'label' and a 'bbox', got {item!r}")
        out.append((label, _gold_box(item[key], md, size)))
    return out


def _threshold(md: dict) -> float:
    t = md.get("iou_threshold", DEFAULT_IOU_THRESHOLD)
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 <= t <= 1.0:
        raise ValueError(f"metadata['iou_threshold'] must be a number in [0, 1], got {t!r}")
    return float(t)


def _to_image(box: Box, fmt: str, size) -> Box:
    x1, y1, x2, y2 = to_pixels(box, fmt, size)
    if size is not None:
        w, h = size
        x1, x2 = min(max(x1, 0.0), w), min(max(x2, 0.0), w)
        y1, y2 = min(max(y1, 0.0), h), min(max(y2, 0.0), h)
    return x1, y1, x2, y2


@register_reward("detection")
def detection_reward(completion: str, sample: dict) -> float:
    """F1 of the predicted labelled boxes against the gold ones (greedy IoU matching)."""
    md = sample_metadata(sample)
    fmt, size = box_convention(md)
    gold = _gold_detections(sample["answer"], md, size)
    threshold = _threshold(md)
    try:
        region = answer_region(completion)
        if region is None:
            return 0.0
        found = _parse(region)
        if found is None and answer_block(completion) is not None:
            rest = after_think(completion)
            found = _parse(rest) if rest is not None else None
        found = found or []
        if not found and not gold:
            return 1.0
        if not found or not gold:
            return 0.0
        pred = []
        for label, box in found:
            try:
                pbox = _to_image(box, fmt, size)
            except (ValueError, OverflowError):
                pbox = (math.nan,) * 4
            pred.append((label, pbox))
        matches = match_detections(pred, gold, threshold)
        return 2.0 * matches / (len(pred) + len(gold))
    except Exception:
        return 0.0
