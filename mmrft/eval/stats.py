"""Evaluation statistics: pass@k, majority voting, paired bootstrap comparison of two runs, per-category accuracy.

Pure functions with no model or I/O dependencies; numpy only.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypedDict

import numpy as np

NONE_BUCKET = "(none)"
_CHUNK_ELEMENTS = 1 << 22  # resampled indices held at once in paired_bootstrap (~32 MiB of int64)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k estimator of Chen et al. 2021 ("Evaluating Large Language Models Trained on Code").

    With ``n`` samples of which ``c`` are correct, ``pass@k = 1 - C(n-c, k) / C(n, k)``: the probability that
    a uniformly drawn size-``k`` subset of the ``n`` samples contains at least one correct one. Computed in the
    numerically stable product form ``1 - prod_{i=n-c+1}^{n} (1 - k / i)`` (no large binomials); it is exactly
    1.0 when ``n - c < k`` (every size-k subset holds a correct sample).
    """
    n, c, k = operator.index(n), operator.index(c), operator.index(k)
    if k < 1:
        raise ValueError(f"pass_at_k: k must be >= 1, got k={k}")
    if k > n:
        raise ValueError(f"pass_at_k: k={k} exceeds the number of samples n={n}; need k <= n")
    if not 0 <= c <= n:
        raise ValueError(f"pass_at_k: the correct count c={c} must lie in [0, n={n}]")
    if n - c < k:
        return 1.0
    i = np.arange(n - c + 1, n + 1, dtype=np.float64)
    return float(1.0 - np.prod(1.0 - k / i))


def majority_vote(answers: Sequence[str | None], scores: Sequence[float]) -> tuple[str | None, float]:
    """Most frequent non-None answer (self-consistency voting) and its score.

    ``answers[i]`` is the extracted answer of sample i (None: nothing could be extracted, never voted for) and
    ``scores[i]`` its score. Answers are compared exactly, so normalise them first. The returned score is that of
    the first sample giving the winning answer (samples with equal answers score alike by construction).
    Ties in count are broken by first occurrence: among the most frequent answers, the one that appears earliest
    in ``answers`` wins. If every answer is None (or there are none), returns ``(None, 0.0)``.
    """
    if len(answers) != len(scores):
        raise ValueError(f"majority_vote: {len(answers)} answers but {len(scores)} scores")
    counts: dict[str, int] = {}
    first_score: dict[str, float] = {}
    for answer, score in zip(answers, scores):
        if answer is None:
            continue
        if answer not in counts:  # dicts keep insertion order = order of first occurrence
            counts[answer] = 0
            first_score[answer] = float(score)
        counts[answer] += 1
    if not counts:
        return None, 0.0
    best = max(counts, key=counts.__getitem__)  # max() keeps the first of equal keys, i.e. the earliest answer
    return best, first_score[best]


@dataclass(frozen=True)
class BootstrapResult:
    """Paired bootstrap comparison of run b against run a.

    ``delta = mean(b) - mean(a)``; ``[low, high]`` is the percentile confidence interval of the resampled deltas;
    ``p_value`` is the two-sided bootstrap p-value for H0: delta = 0 (see :func:`paired_bootstrap`).
    """

    delta: float
    low: float
    high: float
    p_value: float
    n_items: int
    n_resamples: int
    confidence: float


def paired_bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    *,
    n_resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """Paired bootstrap of the difference in mean score between two runs scored on the same items.

    ``a[i]`` and ``b[i]`` are the scores of runs a and b on item i. With ``d_i = b_i - a_i`` and N items,
    ``delta = mean(d) = mean(b) - mean(a)``. Each of R resamples draws N item indices uniformly with
    replacement (the same indices for both runs, which is what pairs them) and records ``delta*_r`` = mean of d
    over the drawn indices. The CI is the percentile interval: the ``(1-confidence)/2`` and ``(1+confidence)/2``
    quantiles of ``delta*`` (numpy's linear interpolation).

    Two-sided p-value (shifted-null bootstrap): the resampled deltas centred on zero, ``delta*_r - delta``, stand
    for the null distribution, so ``p = (1 + #{r : |delta*_r - delta| >= |delta|}) / (R + 1)``. It is 1.0 when
    delta is 0 and at least ``1/(R+1)``.

    Resamples are drawn in chunks of about 4M indices, so memory stays bounded for any N and R; the result is
    deterministic for a given seed (and inputs).
    """
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.size != y.size:
        raise ValueError(f"paired_bootstrap: runs differ in length ({x.size} vs {y.size}); scores must be paired")
    if x.size == 0:
        raise ValueError("paired_bootstrap: no items to compare")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("paired_bootstrap: scores must be finite (no NaN or inf)")
    n_resamples = operator.index(n_resamples)
    if n_resamples < 1:
        raise ValueError(f"paired_bootstrap: n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"paired_bootstrap: confidence must lie in (0, 1), got {confidence}")

    d = y - x
    n = d.size
    delta = float(d.mean())
    rng = np.random.default_rng(seed)
    deltas = np.empty(n_resamples, dtype=np.float64)
    per_chunk = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_resamples, per_chunk):
        stop = min(start + per_chunk, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        deltas[start:stop] = d[idx].mean(axis=1)

    alpha = 1.0 - confidence
    low, high = np.quantile(deltas, [alpha / 2.0, 1.0 - alpha / 2.0])
    # Tolerance for float noise: resample means of a constant d can differ from delta in the last bits.
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))
    extreme = int(np.count_nonzero(np.abs(deltas - delta) >= abs(delta) - tol))
    p_value = (1 + extreme) / (n_resamples + 1)
    return BootstrapResult(
        delta=delta,
        low=float(low),
        high=float(high),
        p_value=float(p_value),
        n_items=n,
        n_resamples=n_resamples,
        confidence=float(confidence),
    )


class CategoryStats(TypedDict):
    n: int
    accuracy: float


def accuracy_by_category(records: Iterable[dict], categories: Sequence[str]) -> dict[str, dict[str, CategoryStats]]:
    """Mean score per value of each requested category.

    Each record holds ``score`` (float; with 0/1 scores the mean is the accuracy) and ``categories``, a dict
    ``name -> value`` where value is a str or a list of str. For category ``name`` and value ``v``:
    ``accuracy = sum(score of records under v) / n`` with ``n`` the number of such records. A list value counts
    the record once under each distinct element; a missing name, a None value or an empty list puts the record in
    the ``"(none)"`` bucket. Returns ``{name: {value: {"n", "accuracy"}}}`` with both levels' keys sorted.
    """
    sums: dict[str, dict[str, list[float]]] = {name: {} for name in categories}
    for i, record in enumerate(records):
        if "score" not in record:
            raise ValueError(f"accuracy_by_category: record {i} has no 'score'")
        score = float(record["score"])
        cats = record.get("categories") or {}
        for name in categories:
            raw = cats.get(name)
            if isinstance(raw, (list, tuple, set, frozenset)):
                values = sorted({str(v) for v in raw if v is not None}) or [NONE_BUCKET]
            else:
                values = [NONE_BUCKET if raw is None else str(raw)]
            for value in values:
                acc = sums[name].setdefault(value, [0, 0.0])
                acc[0] += 1
                acc[1] += score
    return {
        name: {
            value: CategoryStats(n=int(cnt), accuracy=total / cnt)
            for value, (cnt, total) in sorted(sums[name].items())
        }
        for name in sorted(sums)
    }
