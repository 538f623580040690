"""``chart`` reward: ChartQA relaxed accuracy.  Score 0.0 or 1.0.

The prediction is :func:`~mmrft.rewards.extract.extract_answer` of the
completion.  The gold (``sample["answer"]``) is a number, a string, or a list
of acceptable answers (any one may match).

* **Numeric gold** — an ``int``/``float``, or a string that is one number and
  nothing else apart from a sign, a currency symbol, thousands separators and a
  trailing ``%``/"percent" (``"1,234"``, ``"$12.5"``, ``"45%"``, ``"-0.3"``).
  The prediction's number is read with :func:`mmrft.rewards.numeric.parse_number`
  (the *last* number of the extracted answer; units and words around it are
  ignored; LaTeX such as ``\\frac{1}{2}`` and ``45\\%`` understood).  Correct
  when ``|pred - gold| <= 0.05 * |gold|`` (``metadata["rel_tol"]`` overrides
  0.05); a gold of 0 needs exactly 0.  Percentages as in ``numeric``: a value
  written with ``%`` stands for both ``p`` and ``p/100`` (gold "45%" accepts 45,
  45% and 0.45; gold 45 accepts 45%; gold 0.45 accepts 45% but not 45).  As in
  the ChartQA evaluation, the 5% tolerance applies to every number, years
  included (gold 2019 accepts 2020).  A prediction with no number falls back to
  the string comparison below.
* **Text gold** — exact match after :func:`mmrft.rewards.numeric.normalize_text`
  (case-folded, whitespace collapsed, surrounding quotes/``$`` and trailing
  periods removed): "Democrats." == "democrats".

A missing, empty or non-string/number gold raises ``ValueError``.
"""

from __future__ import annotations

import math
import re
from typing import List, Optional, Tuple, Union

from mmrft.rewards.extract import extract_answer
from mmrft.rewards.numeric import normalize_text, parse_number
from mmrft.rewards.registry import register_reward

__all__ = ["chart_reward", "relaxed_match", "DEFAULT_REL_TOL"]

DEFAULT_REL_TOL = 0.05

# A gold string that is a single number (plus sign/currency/percent); anything else is text.
_GOLD_NUMBER_RE = re.compile(
    r"[-+\u2212]?\s*[$€£¥]?\s*[-+\u2212]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?\s*(?:%|per ?cent)?",
    re.IGNORECASE,
)

Gold = Union[Tuple[float, ...], str]


def _gold_one(gold) -> Gold:
    """``(values...)`` for a numeric gold, else its normalised text."""
    if isinstance(gold, bool) or gold is None:
        raise ValueError(f"chart gold answer must be a string or a number, got {gold!r}")
    if isinstance(gold, (int, float)):
        if not math.isfinite(gold):
            raise ValueError(f"chart gold answer must be finite, got {gold!r}")
        return (float(gold),)
    if not isinstance(gold, str):
        raise ValueError(f"chart gold answer must be a string or a number, got {type(gold).__name__}")
    text = gold.strip()
    if not text:
        raise ValueError("chart gold answer is empty")
    if any(c.isdigit() for c in text) and _GOLD_NUMBER_RE.fullmatch(text):
        values = parse_number(text)
        if values is not None:
            return values
    norm = normalize_text(text)
    if not norm:
        raise ValueError(f"chart gold answer {gold!r} is empty after normalisation")
    return norm


def relaxed_match(pred: str, gold: Gold, rel_tol: float = DEFAULT_REL_TOL) -> bool:
    """ChartQA relaxed correctness of one extracted answer against one parsed gold."""
    if isinstance(gold, tuple):
        values = parse_number(pred)
        if values is not None:
            for g in gold:
                for p in values:
                    if g == 0.0:
                        if p == 0.0:
                            return True
                    elif abs(p - g) <= rel_tol * abs(g):
                        return True
            return False
        return normalize_text(pred) == normalize_text(_format_number(gold[0]))
    return normalize_text(pred) == gold


def _format_number(x: float) -> str:
    return str(int(x)) if x.is_integer() else repr(x)


def _rel_tol(sample: dict) -> float:
    md = sample.get("metadata") or {}
    if not isinstance(md, dict):
        raise ValueError(f"sample['metadata'] must be a dict, got {type(md).__name__}")
    v = md.get("rel_tol", DEFAULT_REL_TOL)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v >= 0 and math.isfinite(v)):
        raise ValueError(f"metadata['rel_tol'] must be a non-negative number, got {v!r}")
    return float(v)


@register_reward("chart")
def chart_reward(completion: str, sample: dict) -> float:
    """1.0 iff the extracted answer is relaxed-correct (5% for numbers, exact for text)."""
    if not isinstance(sample, dict) or "answer" not in sample:
        raise ValueError("sample must be a dict with an 'answer' key")
    raw = sample["answer"]
    golds: List[Gold] = [_gold_one(g) for g in (raw if isinstance(raw, (list, tuple)) else [raw])]
    if not golds:
        raise ValueError("chart gold answer list is empty")
    rel_tol = _rel_tol(sample)
    try:
        pred: Optional[str] = extract_answer(completion)
        if pred is None:
            return 0.0
        return 1.0 if any(relaxed_match(pred, g, rel_tol) for g in golds) else 0.0
    except Exception:
        return 0.0
