"""String and number graders: ``exact``, ``numeric`` and ``count``.

All three grade :func:`~mmrft.rewards.extract.extract_answer` of the completion
against ``sample["answer"]`` and score 0.0 or 1.0.

``exact``
    Normalised string equality: case-folded, internal whitespace collapsed,
    surrounding ``$…$`` / ``\\(…\\)`` / quotes / backticks and trailing periods
    removed (repeatedly), on both sides.

``numeric``
    The answer must be a number within ``rel_tol`` (default 1e-4) or ``abs_tol``
    (default 1e-8) of the gold; both can be overridden per sample through
    ``metadata["rel_tol"]`` / ``metadata["abs_tol"]``.  Parsing rule, applied to
    the extracted answer (and, more strictly, to a string gold):

    * LaTeX is simplified first: ``$``, ``\\$``, ``\\,``/``\\!``/``{,}`` removed,
      ``\\text{…}``-style wrappers unwrapped, ``\\%`` -> ``%``,
      ``\\frac{a}{b}`` (a, b plain numbers) -> ``a/b``, ``a \\times 10^{k}`` -> ``aek``;
      the Unicode minus becomes ``-``.
    * Unit exponents (``cm^2``, ``m^{3}``, ``km²``) and parenthesised remarks that
      contain letters ("(rounded)") are dropped.
    * Number tokens are then found: optional sign, digits with optional
      ``1,234,567`` thousands separators, optional decimals, optional exponent
      (``1.2e3``), optionally ``a/b``, optionally followed by ``%``/"percent".
      Units or words around them are ignored.  The **last** token is the answer
      (``"3 + 4 = 7"`` -> 7).  With no digit token the English words
      zero..twenty are tried.  Non-finite values (``1e99999999``) score 0.
    * Percentages: a value written with ``%`` stands for both ``p`` and ``p/100``.
      So gold "45%" accepts 45, 45% and 0.45; gold 0.45 accepts 0.45 and 45%
      but not 45; gold 45 accepts 45 and 45% but not 0.45.
    * Decimal commas (``3,5``) are *not* supported: they read as 3 and 5.

``count``
    Integer answers.  The last integer mentioned in the extracted answer wins,
    written with digits ("3 circles", "1,024") or as an English word zero..twenty
    (also twenty-one..twenty-nine); "no"/"none" count as 0 only when no other
    number is mentioned ("There are no red cubes.").  A last mention that is not
    an integer ("3.5") scores 0.  Exact integer match -> 1.0.
"""

from __future__ import annotations

import math
import re
from typing import List, Optional, Sequence, Tuple

from mmrft.rewards.extract import extract_answer
from mmrft.rewards.registry import register_reward

__all__ = [
    "exact_reward",
    "numeric_reward",
    "count_reward",
    "normalize_text",
    "parse_number",
    "parse_count",
    "numbers_match",
]

DEFAULT_REL_TOL = 1e-4
DEFAULT_ABS_TOL = 1e-8

_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20,
}  # fmt: skip
_UNITS = "one|two|three|four|five|six|seven|eight|nine"
_WORD_RE = re.compile(
    rf"\b(?:twenty[- ](?P<unit>{_UNITS})|(?P<word>{'|'.join(sorted(_WORDS, key=len, reverse=True))}))\b",
    re.IGNORECASE,
)
_ZERO_RE = re.compile(r"\b(?:no|none|nothing)\b", re.IGNORECASE)


def _gold_of(sample: dict):
    if not isinstance(sample, dict) or "answer" not in sample:
        raise ValueError("sample must be a dict with an 'answer' key")
    return sample["answer"]


def _metadata(sample: dict) -> dict:
    md = sample.get("metadata") or {}
    if not isinstance(md, dict):
        raise ValueError(f"sample['metadata'] must be a dict, got {type(md).__name__}")
    return md


# ----------------------------------------------------------------------------- exact

_QUOTES = "\"'`“”‘’"


def normalize_text(s: str) -> str:
    """Case-fold, collapse whitespace, strip surrounding ``$``/``\\(\\)``/quotes and trailing periods."""
    s = " ".join(s.split()).casefold()
    prev = None
    while prev != s:
        prev = s
        s = s.strip().rstrip(".").strip()
        if len(s) >= 2 and s[0] == s[-1] and s[0] in "$" + _QUOTES:
            s = s[1:-1]
        elif len(s) >= 4 and s.startswith("\\(") and s.endswith("\\)"):
            s = s[2:-2]
        elif len(s) >= 2 and s[0] in "“‘" and s[-1] in "”’":
            s = s[1:-1]
    return s


def _gold_text(gold) -> str:
    if isinstance(gold, bool) or gold is None or isinstance(gold, (list, tuple, dict, set)):
        raise ValueError(f"gold answer must be a string or a number, got {gold!r}")
    if isinstance(gold, float) and gold.is_integer():
        gold = int(gold)
    return str(gold)


@register_reward("exact")
def exact_reward(completion: str, sample: dict) -> float:
    """1.0 iff the normalised extracted answer equals the normalised gold string."""
    gold = normalize_text(_gold_text(_gold_of(sample)))
    if not gold:
        raise ValueError("gold answer is empty")
    try:
        pred = extract_answer(completion)
        return 1.0 if pred is not None and normalize_text(pred) == gold else 0.0
    except Exception:
        return 0.0


# ----------------------------------------------------------------------------- numbers

_NUM = r"[-+]?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+(?:[eE][-+]?\d+)?"
_TOKEN_RE = re.compile(
    rf"(?<![\w.])(?P<num>{_NUM})(?:[ \t]*/[ \t]*(?P<den>{_NUM}))?(?P<pct>[ \t]*(?:%|per[ \t]?cent\b))?",
    re.IGNORECASE,
)
_LATEX_SCI_RE = re.compile(
    r"(\d(?:\.\d+)?)\s*(?:\\times|\\cdot|×|\*|x)\s*10\s*\^\s*(?:\{\s*)?([-+]?\d+)(?:\s*\})?"
)
_LATEX_FRAC_RE = re.compile(r"\\[dt]?frac\s*\{\s*([-+]?[\d.]+)\s*\}\s*\{\s*([-+]?[\d.]+)\s*\}")
_LATEX_WRAP_RE = re.compile(r"\\(?:text|textbf|mathrm|mathbf|operatorname|mbox)\s*\{([^{}]*)\}")
_UNIT_EXP_RE = re.compile(r"(?<=[A-Za-z])\s*\^\s*(?:\{\s*)?-?\d+(?:\s*\})?|[²³]")
_PAREN_REMARK_RE = re.compile(r"\((?=[^()]*[A-Za-z])[^()]*\)")
_LATEX_DROP = ("\\$", "$", "\\,", "\\!", "\\;", "\\:", "{,}", "\\left", "\\right", "\\ ")


def _simplify(s: str) -> str:
    s = s.replace("\u2212", "-").replace("\\%", "%")
    for tok in _LATEX_DROP:
        s = s.replace(tok, " " if tok == "\\ " else "")
    s = _LATEX_WRAP_RE.sub(r" \1 ", s)
    s = _LATEX_FRAC_RE.sub(r" \1/\2 ", s)
    s = _LATEX_SCI_RE.sub(r"\1e\2", s)
    s = _UNIT_EXP_RE.sub("", s)
    s = _PAREN_REMARK_RE.sub(" ", s)
    return s


def _to_float(tok: str) -> float:
    return float(tok.replace(",", ""))


def _candidates(m: "re.Match") -> Tuple[float, ...]:
    value = _to_float(m.group("num"))
    if m.group("den") is not None:
        den = _to_float(m.group("den"))
        if den == 0:
            raise ValueError("zero denominator")
        value = value / den
    if not math.isfinite(value):
        raise ValueError("non-finite")
    if m.group("pct"):
        return (value, value / 100.0)
    return (value,)


def parse_number(text: str) -> Optional[Tuple[float, ...]]:
    """Candidate values of the last number in ``text`` (two for a percentage), or ``None``.

    See the module docstring for the exact rule.
    """
    if not isinstance(text, str):
        return None
    s = _simplify(text)
    last = None
    for last in _TOKEN_RE.finditer(s):
        pass
    if last is not None:
        try:
            return _candidates(last)
        except (ValueError, OverflowError, ZeroDivisionError):
            return None
    words = list(_WORD_RE.finditer(s))
    if words:
        return (float(_word_value(words[-1])),)
    return None


def numbers_match(pred: Sequence[float], gold: Sequence[float], rel_tol: float, abs_tol: float) -> bool:
    return any(math.isclose(p, g, rel_tol=rel_tol, abs_tol=abs_tol) for p in pred for g in gold)


def _gold_number(gold) -> Tuple[float, ...]:
    if isinstance(gold, bool):
        raise ValueError(f"gold answer must be a number, got {gold!r}")
    if isinstance(gold, (int, float)):
        if not math.isfinite(gold):
            raise ValueError(f"gold answer must be finite, got {gold!r}")
        return (float(gold),)
    if isinstance(gold, str):
        parsed = parse_number(gold)
        if parsed is None:
            raise ValueError(f"gold answer {gold!r} contains no number")
        return parsed
    raise ValueError(f"gold answer must be a number or a numeric string, got {type(gold).__name__}")


def _tol(md: dict, key: str, default: float) -> float:
    v = md.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
        raise ValueError(f"metadata[{key!r}] must be a non-negative number, got {v!r}")
    return float(v)


@register_reward("numeric")
def numeric_reward(completion: str, sample: dict) -> float:
    """1.0 iff the last number of the extracted answer is within tolerance of the gold."""
    gold = _gold_number(_gold_of(sample))
    md = _metadata(sample)
    rel_tol, abs_tol = _tol(md, "rel_tol", DEFAULT_REL_TOL), _tol(md, "abs_tol", DEFAULT_ABS_TOL)
    try:
        pred = extract_answer(completion)
        values = parse_number(pred) if pred is not None else None
        return 1.0 if values is not None and numbers_match(values, gold, rel_tol, abs_tol) else 0.0
    except Exception:
        return 0.0


# ----------------------------------------------------------------------------- count

_INT_RE = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?P<frac>\.\d+)?(?!\w)")


def _word_value(m: "re.Match") -> int:
    if m.group("unit"):
        return 20 + _WORDS[m.group("unit").lower()]
    return _WORDS[m.group("word").lower()]


def parse_count(text: str) -> Optional[int]:
    """The last integer mentioned in ``text`` (digits or zero..twenty-nine in words), else ``None``."""
    if not isinstance(text, str):
        return None
    s = text.replace("\u2212", "-")
    mentions: List[Tuple[int, Optional[int]]] = []  # (position, value or None for non-integer)
    for m in _INT_RE.finditer(s):
        value: Optional[int]
        if m.group("frac") is not None:
            f = float(m.group().replace(",", ""))
            value = int(f) if f.is_integer() else None
        else:
            value = int(m.group().replace(",", "")) if len(m.group()) < 40 else None
        mentions.append((m.start(), value))
    for m in _WORD_RE.finditer(s):
        mentions.append((m.start(), _word_value(m)))
    if mentions:
        return max(mentions, key=lambda t: t[0])[1]
    return 0 if _ZERO_RE.search(s) else None


def _gold_count(gold) -> int:
    if isinstance(gold, bool):
        raise ValueError(f"gold count must be an integer, got {gold!r}")
    if isinstance(gold, int):
        return gold
    if isinstance(gold, float) and gold.is_integer():
        return int(gold)
    if isinstance(gold, str):
        value = parse_count(gold)
        if value is not None:
            return value
    raise ValueError(f"gold count must be an integer (or its digits/word), got {gold!r}")


@register_reward("count")
def count_reward(completion: str, sample: dict) -> float:
    """1.0 iff the last integer mentioned in the extracted answer equals the gold count."""
    gold = _gold_count(_gold_of(sample))
    try:
        pred = extract_answer(completion)
        return 1.0 if pred is not None and parse_count(pred) == gold else 0.0
    except Exception:
        return 0.0
