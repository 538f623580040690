"""``math`` reward: symbolic equivalence through math-verify.

Score 1.0 when ``math_verify.verify(gold, pred)`` holds, else 0.0.

* ``pred`` is :func:`~mmrft.rewards.extract.extract_answer` of the completion
  (so ``\\boxed{}``/``<answer>`` content), parsed as LaTeX wrapped in ``$…$``
  (``\\frac{1}{2}``, ``3\\sqrt{2}``, ``x = 5``).  If the text reads like prose
  (a word of three or more letters outside a LaTeX command) it is parsed as-is
  first so that math-verify picks the expression out of the sentence; the
  other form is the fallback when the first yields nothing.
* ``gold`` (string or number) is wrapped in ``$…$`` unless it already has math
  delimiters or ``\\boxed``.  A gold math-verify cannot parse raises
  ``ValueError`` (malformed sample).  Parsed golds are cached, and so are
  verdicts per (gold, extracted answer): each distinct answer of a group is
  parsed and verified once.
* Extracted answers longer than :data:`MAX_ANSWER_CHARS` score 0 without parsing.
* Any exception while handling the model output -> 0.0.
* ``math_reward.warmup()`` imports math-verify ahead of time (the runner calls
  it when a worker starts, outside the per-call time limit).

Time limits: math-verify enforces its own ``signal.alarm`` time limits, which only
work in the main thread.  They are passed (:data:`TIMEOUT_S` seconds) only when
running in the main thread *and* no interval timer is already armed; otherwise
(other threads, or inside :class:`~mmrft.rewards.runner.RewardRunner`, whose
per-call ``setitimer`` limit would be cancelled by math-verify's ``alarm(0)``)
``None`` is passed and the caller's limit applies.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
from collections import OrderedDict
from typing import Dict, List, Optional

from mmrft.rewards.extract import extract_answer
from mmrft.rewards.registry import register_reward

__all__ = ["math_reward", "TIMEOUT_S", "MAX_ANSWER_CHARS"]

TIMEOUT_S: int = 5  # seconds; math-verify's alarm() takes whole seconds
MAX_ANSWER_CHARS: int = 1000

_PROSE_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")
_DELIMITED_RE = re.compile(r"\$|\\\(|\\\[|\\boxed|\\fbox")
_GOLD_CACHE: Dict[str, list] = {}
_GOLD_CACHE_MAX = 4096
# (gold, extracted answer) -> score. The G completions of a prompt mostly give the same few answers, so an RL step
# parses and verifies each distinct answer once; math-verify is deterministic, so a cached verdict is the verdict.
# Only finished verdicts are stored: a call cut off by a time limit raises past the store.
_VERDICT_CACHE: "OrderedDict[tuple[str, str], float]" = OrderedDict()
_VERDICT_CACHE_MAX = 65536
_filter_installed = False


class _DropTimeoutDisabledWarning(logging.Filter):
    """We disable math-verify's own alarm on purpose when an outer limit is active."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Timeout is disabled")


def _math_verify():
    global _filter_installed
    import math_verify  # lazy: pulls in sympy (~0.5 s)

    if not _filter_installed:
        for name in ("math_verify.parser", "math_verify.grader", "math_verify"):
            logging.getLogger(name).addFilter(_DropTimeoutDisabledWarning())
        _filter_installed = True
    return math_verify


def _own_timeout() -> Optional[int]:
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        if signal.getitimer(signal.ITIMER_REAL)[0] > 0:
            return None
    except (AttributeError, OSError):  # pragma: no cover - non-POSIX
        return None
    return int(TIMEOUT_S) if TIMEOUT_S else None


def _wrap(text: str) -> str:
    text = text.strip()
    if _DELIMITED_RE.search(text):
        return text
    return "$" + re.sub(r"(?<!\\)%", r"\\%", text) + "$"


def _parse_gold(gold_text: str, timeout: Optional[int]) -> list:
    cached = _GOLD_CACHE.get(gold_text)
    if cached is not None:
        return cached
    mv = _math_verify()
    parsed = mv.parse(_wrap(gold_text), parsing_timeout=timeout)
    if not parsed:
        raise ValueError(f"math-verify cannot parse the gold answer {gold_text!r}")
    if len(_GOLD_CACHE) >= _GOLD_CACHE_MAX:
        _GOLD_CACHE.clear()
    _GOLD_CACHE[gold_text] = parsed
    return parsed


def _parse_pred(text: str, timeout: Optional[int]) -> List:
    mv = _math_verify()
    forms = [_wrap(text), text]
    if _PROSE_RE.search(text):
        forms.reverse()
    for form in forms:
        parsed = mv.parse(form, parsing_timeout=timeout)
        if parsed:
            return parsed
    return []


@register_reward("math")
def math_reward(completion: str, sample: dict) -> float:
    """1.0 iff the extracted answer is mathematically equivalent to the gold (math-verify)."""
    if not isinstance(sample, dict) or "answer" not in sample:
        raise ValueError("sample must be a dict with an 'answer' key")
    gold = sample["answer"]
    if isinstance(gold, bool) or not isinstance(gold, (str, int, float)) or str(gold).strip() == "":
        raise ValueError(f"math gold answer must be a non-empty string or a number, got {gold!r}")
    timeout = _own_timeout()
    gold_text = str(gold).strip()
    gold_parsed = _parse_gold(gold_text, timeout)
    try:
        pred = extract_answer(completion)
        if pred is None or len(pred) > MAX_ANSWER_CHARS:
            return 0.0
        key = (gold_text, pred)
        cached = _VERDICT_CACHE.get(key)
        if cached is not None:
            _VERDICT_CACHE.move_to_end(key)
            return cached
        pred_parsed = _parse_pred(pred, timeout)
        mv = _math_verify()
        score = 1.0 if pred_parsed and mv.verify(gold_parsed, pred_parsed, timeout_seconds=timeout) else 0.0
    except Exception:
        return 0.0
    _VERDICT_CACHE[key] = score
    if len(_VERDICT_CACHE) > _VERDICT_CACHE_MAX:
        _VERDICT_CACHE.popitem(last=False)
    return score


def _warmup() -> None:
    """Import math-verify/sympy and run one parse, so the first graded call is not charged for it."""
    mv = _math_verify()
    mv.verify(mv.parse("$1$", parsing_timeout=None), mv.parse("$1$", parsing_timeout=None), timeout_seconds=None)


math_reward.warmup = _warmup  # type: ignore[attr-defined]
