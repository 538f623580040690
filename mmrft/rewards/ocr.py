"""``ocr`` reward: ANLS (Average Normalized Levenshtein Similarity).  Score in {0} ∪ [0.5, 1].

Gold (``sample["answer"]``): a string or a list of acceptable strings; the
score is the maximum over them.

**Prediction**: :func:`~mmrft.rewards.extract.extract_answer` of the
completion (``<answer>`` block, ``\\boxed{}``, "The answer is …", else the last
line) — except that a gold spanning several lines (a transcription) is compared
with the whole last ``<answer>`` block, or else with all the text after the
last ``</think>``, since the last-line rule would keep only one line.  A
completion that stops inside ``<think>`` or has no answer scores 0.0.

**Normalisation** (both sides): case-folded, whitespace runs collapsed to one
space, stripped, trailing periods removed (the extractor already drops them
from the prediction, so the gold side must match).

**Score** (Biten et al., 2019, "Scene Text Visual Question Answering"; τ = 0.5):
``s = 1 - lev(p, g) / max(len(p), len(g))``, set to 0.0 when ``s < 0.5``.  A
similarity of exactly 0.5 is kept, as in the DocVQA / lmms-eval reference code
(``if score < threshold: score = 0``).

**Edit distance**: neither ``Levenshtein`` nor ``rapidfuzz`` is installed, so
:func:`levenshtein` is a plain dynamic programme: pure Python for small
inputs, a NumPy row recurrence (one vectorised pass per character; the
insertion chain is a running minimum) for large ones.  Cost is kept bounded
without changing any score:

* a prediction more than twice as long as a gold cannot reach ``s >= 0.5``
  (``lev >= len(p) - len(g) > len(p) / 2``), so it scores 0 without a DP —
  this is the exact form of the usual "truncate the prediction at a few times
  the gold length" cap;
* the DP stops as soon as a whole row exceeds ``max_len / 2`` (the distance
  can only grow).

Only golds longer than :data:`MAX_CHARS` characters (after normalisation)
are approximated: both strings are cut to that length first.
"""

from __future__ import annotations

from typing import List, Optional

from mmrft.rewards.detection import after_think
from mmrft.rewards.extract import answer_block, extract_answer
from mmrft.rewards.registry import register_reward

__all__ = ["ocr_reward", "anls", "levenshtein", "normalize_ocr", "ANLS_THRESHOLD", "MAX_CHARS"]

ANLS_THRESHOLD = 0.5
MAX_CHARS = 5000
_NUMPY_MIN_CELLS = 40_000  # below this the pure-Python DP is faster than NumPy's per-row overhead


def normalize_ocr(s: str) -> str:
    """Case-fold, collapse whitespace, strip, drop trailing periods."""
    s = " ".join(s.split()).casefold()
    return s.rstrip(".").rstrip()


def _lev_python(a: str, b: str, max_dist: int) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        append = cur.append
        for j, cb in enumerate(b, 1):
            sub = prev[j - 1] + (ca != cb)
            ins = cur[j - 1] + 1
            dele = prev[j] + 1
            append(sub if sub <= ins and sub <= dele else (ins if ins <= dele else dele))
        if min(cur) > max_dist:
            return max_dist + 1
        prev = cur
    return prev[-1]


def _lev_numpy(a: str, b: str, max_dist: int) -> int:
    import numpy as np

    bb = np.array([ord(c) for c in b], dtype=np.int64)
    idx = np.arange(len(b) + 1, dtype=np.int64)
    prev = idx.copy()
    t = np.empty(len(b) + 1, dtype=np.int64)
    for i, ca in enumerate(a, 1):
        # t[j] = best of deletion / substitution; insertions are a running minimum.
        t[0] = i
        np.minimum(prev[1:] + 1, prev[:-1] + (bb != ord(ca)), out=t[1:])
        cur = np.minimum.accumulate(t - idx) + idx
        if int(cur.min()) > max_dist:
            return max_dist + 1
        prev = cur
    return int(prev[-1])


def levenshtein(a: str, b: str, max_dist: Optional[int] = None) -> int:
    """Edit distance (insert/delete/substitute, cost 1).

    With ``max_dist`` the result is exact up to ``max_dist``; any larger distance
    is reported as ``max_dist + 1`` (which allows stopping early).
    """
    if a == b:
        return 0
    if len(a) < len(b):
        a, b = b, a
    if max_dist is None:
        max_dist = len(a)
    if len(a) - len(b) > max_dist:
        return max_dist + 1
    if not b:
        return len(a)
    if len(a) * len(b) >= _NUMPY_MIN_CELLS:
        return _lev_numpy(a, b, max_dist)
    return _lev_python(a, b, max_dist)


def anls(pred: str, golds: List[str], threshold: float = ANLS_THRESHOLD) -> float:
    """ANLS of ``pred`` against the best of ``golds`` (strings are normalised here)."""
    p = normalize_ocr(pred)[: 2 * MAX_CHARS + 1]
    best = 0.0
    for gold in golds:
        g = normalize_ocr(gold)[:MAX_CHARS]
        if not g or not p:
            continue
        if len(p) > 2 * len(g):
            continue  # similarity < 0.5 for sure, see the module docstring
        q = p[:MAX_CHARS] if len(g) == MAX_CHARS else p
        longest = max(len(q), len(g))
        dist = levenshtein(q, g, max_dist=longest // 2)
        sim = 1.0 - dist / longest
        if sim >= threshold and sim > best:
            best = sim
            if best == 1.0:
                break
    return best


def _golds(gold) -> List[str]:
    golds = [gold] if isinstance(gold, str) else gold
    if not isinstance(golds, (list, tuple)) or not golds:
        raise ValueError(f"ocr gold must be a string or a non-empty list of strings, got {gold!r}")
    if not all(isinstance(g, str) and normalize_ocr(g) for g in golds):
        raise ValueError(f"ocr gold strings must be non-empty strings, got {gold!r}")
    return list(golds)


def _prediction(completion: str, multiline: bool) -> Optional[str]:
    if multiline:
        block = answer_block(completion)
        if block is None:
            block = after_think(completion)
        return block if block is not None and block.strip() else None
    return extract_answer(completion)


@register_reward("ocr")
def ocr_reward(completion: str, sample: dict) -> float:
    """ANLS of the extracted answer against the gold string(s) (0 below similarity 0.5)."""
    if not isinstance(sample, dict) or "answer" not in sample:
        raise ValueError("sample must be a dict with an 'answer' key")
    golds = _golds(sample["answer"])
    multiline = any("\n" in g.strip() for g in golds)
    try:
        if not isinstance(completion, str):
            return 0.0
        pred = _prediction(completion, multiline)
        if pred is None:
            return 0.0
        return anls(pred, golds)
    except Exception:
        return 0.0
