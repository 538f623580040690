"""Shaping penalties: ``length_penalty`` and ``repetition_penalty``.  Scores in [-1, 0].

Both look at the whole completion (reasoning included) and are meant to be
added to a task reward with a small weight, e.g.
``build_reward({"math": 1.0, "length_penalty": 0.1, "repetition_penalty": 0.2})``.
A non-string completion scores 0.0.  Bad settings raise ``ValueError``.

``length_penalty``
    ``n = len(completion)`` in characters; with ``limit = max_chars`` and
    ``ramp = ramp_chars``::

        0.0                      if n <= limit
        -(n - limit) / ramp      if limit < n < limit + ramp   (linear)
        -1.0                     if n >= limit + ramp

    Settings come from the sample's ``metadata["max_chars"]`` (default
    :data:`DEFAULT_MAX_CHARS`) and ``metadata["length_ramp_chars"]`` (default:
    equal to ``max_chars``, so the penalty reaches -1 at twice the limit).
    :func:`make_length_penalty` builds a variant with fixed defaults (metadata
    still overrides them) — register it under your own name to use it in a
    spec.

``repetition_penalty``
    ``-(repeated n-grams / total n-grams)`` over the completion's tokens
    (words ``\\w+`` and single punctuation marks, case-folded), ``n = 4`` by
    default: an n-gram is *repeated* when the same n-gram occurred earlier, so
    the score is ``-(1 - distinct / total)``, in ``(-1, 0]``.  Completions with
    fewer than ``n`` tokens score 0.0.  ``metadata["repetition_ngram"]``
    overrides ``n``; only the first :data:`MAX_TOKENS` tokens are looked at.
    Scripts without spaces (Chinese, Japanese) form long ``\\w+`` tokens, so the
    penalty is weak there.  :func:`make_repetition_penalty` builds variants.
"""

from __future__ import annotations

import re
from typing import Callable, Optional

from mmrft.rewards.registry import register_reward

__all__ = [
    "length_penalty",
    "repetition_penalty",
    "make_length_penalty",
    "make_repetition_penalty",
    "DEFAULT_MAX_CHARS",
    "DEFAULT_NGRAM",
    "MAX_TOKENS",
]

DEFAULT_MAX_CHARS = 4000
DEFAULT_NGRAM = 4
MAX_TOKENS = 50_000

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def _metadata(sample) -> dict:
    md = sample.get("metadata") if isinstance(sample, dict) else None
    md = md or {}
    if not isinstance(md, dict):
        raise ValueError(f"sample['metadata'] must be a dict, got {type(md).__name__}")
    return md


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def make_length_penalty(
    max_chars: int = DEFAULT_MAX_CHARS, ramp_chars: Optional[int] = None
) -> Callable[[str, dict], float]:
    """Length penalty: 0 up to ``max_chars``, then linear down to -1 at ``max_chars + ramp_chars``.

    ``ramp_chars`` defaults to ``max_chars``.  Per-sample ``metadata["max_chars"]``
    / ``metadata["length_ramp_chars"]`` override these defaults.
    """
    default_limit = _positive_int(max_chars, "max_chars")
    default_ramp = _positive_int(ramp_chars, "ramp_chars") if ramp_chars is not None else None

    def reward(completion: str, sample: dict) -> float:
        md = _metadata(sample)
        limit = _positive_int(md.get("max_chars", default_limit), "metadata['max_chars']")
        ramp = md.get("length_ramp_chars", default_ramp)
        ramp = limit if ramp is None else _positive_int(ramp, "metadata['length_ramp_chars']")
        if not isinstance(completion, str):
            return 0.0
        over = len(completion) - limit
        if over <= 0:
            return 0.0
        return -min(1.0, over / ramp)

    reward.__name__ = reward.__qualname__ = f"length_penalty_{default_limit}"
    return reward


def make_repetition_penalty(n: int = DEFAULT_NGRAM) -> Callable[[str, dict], float]:
    """Repetition penalty over ``n``-grams of tokens (``metadata["repetition_ngram"]`` overrides ``n``)."""
    default_n = _positive_int(n, "n")

    def reward(completion: str, sample: dict) -> float:
        k = _positive_int(_metadata(sample).get("repetition_ngram", default_n), "metadata['repetition_ngram']")
        if not isinstance(completion, str):
            return 0.0
        tokens = []
        for m in _TOKEN_RE.finditer(completion):
            tokens.append(m.group().casefold())
            if len(tokens) >= MAX_TOKENS:
                break
        total = len(tokens) - k + 1
        if total <= 0:
            return 0.0
        distinct = len(set(zip(*(tokens[i:] for i in range(k)))))
        return -(total - distinct) / total

    reward.__name__ = reward.__qualname__ = f"repetition_penalty_{default_n}"
    return reward


length_penalty = register_reward("length_penalty")(make_length_penalty())
repetition_penalty = register_reward("repetition_penalty")(make_repetition_penalty())
