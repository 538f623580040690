"""``choice`` reward: multiple-choice letter answers.  Score 0.0 or 1.0.

Gold: a letter (``"B"``, ``"(b)"``, ``"B."``), or an option's text when
``metadata["options"]`` is given.  Options are a list of strings (letters A, B,
C, … in order; a leading ``"A. "`` on an option's own text is ignored) or a dict
``letter -> text``.

The extracted answer (:func:`~mmrft.rewards.extract.extract_answer`, which
already handles ``<answer>``, ``\\boxed{}`` and "The answer is …") is searched
for the options it *names*:

1. the whole answer is one letter, optionally wrapped: ``B``, ``(B)``, ``B.``,
   ``B)``, ``**B**``, ``[b]`` (lower case accepted here only);
2. the whole answer equals an option's text (case/space-insensitive);
3. otherwise every mention is collected: an upper-case letter in parentheses
   ``(B)``, after "answer"/"option"/"choice" (``Answer: B``, ``option C``), or
   followed by ``.``/``)``/``:``/``,`` (``B. 42 apples``); plus every option text
   that appears as a whole phrase (matches nested inside a longer matched
   option are ignored); if none was found and the answer is at most five
   words, a lone upper-case letter (``It is B``).

Letters only count when they are valid options: the first ``len(options)``
letters when options are known, else A–H (extended to the gold letter).  In
rule 3's last step ``I``/``A`` followed by a lower-case word other than
and/or/nor/vs are read as pronoun/article ("I think it is B" -> B, but
"A and B" names two).
Exactly one distinct option named and equal to the gold -> 1.0; none, or two
different ones ("A or C") -> 0.0.
"""

from __future__ import annotations

import re
import string
from typing import Dict, List, Optional, Set, Tuple

from mmrft.rewards.extract import extract_answer
from mmrft.rewards.registry import register_reward

__all__ = ["choice_reward", "named_options", "parse_options"]

_LETTERS = string.ascii_uppercase
_WHOLE_LETTER_RE = re.compile(r"[\s(\[{*\"'`]*([A-Za-z])[\s)\]}.:*\"'`]*")
_PAREN_RE = re.compile(r"\(([A-Z])\)")
_MARKER_RE = re.compile(
    r"(?i:\b(?:answer|option|choice)\b)(?:[\s:*]|(?i:is\b))*(?:(?i:option|choice)\s*)?\(?([A-Z])(?![\w'])"
)
_LETTER_PUNCT_RE = re.compile(r"(?<![\w'])([A-Z])[.):,](?!\w)")
_BARE_RE = re.compile(r"(?<![\w'])([A-Z])(?![\w'])")
_NEXT_WORD_RE = re.compile(r"\s+([a-z]+)")
_OWN_PREFIX_RE = re.compile(r"^\s*\(?([A-Za-z])[.):]\s+")
_LATEX_TEXT_RE = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}")


def _norm(s: str) -> str:
    return " ".join(s.split()).casefold().rstrip(".")


def parse_options(options) -> Dict[str, str]:
    """``["x", "y"]`` or ``{"a": "x"}`` -> ``{"A": "x", "B": "y"}`` (texts stripped of their own ``A.`` prefix)."""
    if options is None:
        return {}
    if isinstance(options, dict):
        items = []
        for k, v in options.items():
            if not isinstance(k, str) or len(k.strip().strip("().")) != 1:
                raise ValueError(f"option keys must be single letters, got {k!r}")
            items.append((k.strip().strip("().").upper(), v))
    elif isinstance(options, (list, tuple)):
        if len(options) > len(_LETTERS):
            raise ValueError(f"at most {len(_LETTERS)} options are supported")
        items = list(zip(_LETTERS, options))
    else:
        raise ValueError(f"metadata['options'] must be a list or a dict, got {type(options).__name__}")
    out = {}
    for letter, text in items:
        text = str(text)
        m = _OWN_PREFIX_RE.match(text)
        if m and m.group(1).upper() == letter:
            text = text[m.end() :]
        out[letter] = text.strip()
    return out


def _gold_letter(gold, options: Dict[str, str]) -> str:
    if not isinstance(gold, str) or not gold.strip():
        raise ValueError(f"choice gold answer must be a letter string, got {gold!r}")
    m = _WHOLE_LETTER_RE.fullmatch(gold)
    if m:
        letter = m.group(1).upper()
        if options and letter not in options:
            raise ValueError(f"gold letter {letter!r} is not one of the options {sorted(options)}")
        return letter
    for letter, text in options.items():
        if text and _norm(text) == _norm(gold):
            return letter
    raise ValueError(f"choice gold answer {gold!r} is neither a letter nor an option text")


def _option_mentions(s: str, options: Dict[str, str]) -> Set[str]:
    low = s.casefold()
    spans: List[Tuple[int, int, str]] = []
    for letter, text in options.items():
        t = _norm(text)
        if not t:
            continue
        pattern = (r"(?<!\w)" if t[0].isalnum() else "") + re.escape(t) + (r"(?!\w)" if t[-1].isalnum() else "")
        for m in re.finditer(pattern, low):
            spans.append((m.start(), m.end(), letter))
    found = set()
    for a, b, letter in spans:
        if not any(a2 <= a and b <= b2 and (b2 - a2) > (b - a) for a2, b2, _ in spans):
            found.add(letter)
    return found


def named_options(answer: str, options: Dict[str, str], valid: str) -> Set[str]:
    """Letters of the options named by ``answer`` (see module docstring)."""
    s = _LATEX_TEXT_RE.sub(r"\1", answer).replace("$", "").strip()
    if not s:
        return set()
    m = _WHOLE_LETTER_RE.fullmatch(s)
    if m:
        letter = m.group(1).upper()
        return {letter} if letter in valid else set()
    ns = _norm(s)
    exact = {letter for letter, text in options.items() if text and _norm(text) == ns}
    if exact:
        return exact
    named: Set[str] = set()
    for rx in (_PAREN_RE, _MARKER_RE, _LETTER_PUNCT_RE):
        named.update(m.group(1) for m in rx.finditer(s))
    named = {x for x in named if x in valid}
    named |= _option_mentions(s, options)
    if not named and len(s.split()) <= 5:
        named = {m.group(1) for m in _BARE_RE.finditer(s) if m.group(1) in valid and not _is_word(s, m)}
    return named


def _is_word(s: str, m: "re.Match") -> bool:
    """``I``/``A`` used as pronoun/article: followed by a lower-case word other than and/or/nor/vs."""
    if m.group(1) not in "IA":
        return False
    nxt = _NEXT_WORD_RE.match(s, m.end())
    return bool(nxt) and nxt.group(1) not in ("and", "or", "nor", "vs")


def _valid_letters(options: Dict[str, str], gold: str) -> str:
    if options:
        return "".join(sorted(options))
    last = max("H", gold)
    return _LETTERS[: _LETTERS.index(last) + 1]


@register_reward("choice")
def choice_reward(completion: str, sample: dict) -> float:
    """1.0 iff the completion names exactly one option and it is the gold one."""
    if not isinstance(sample, dict) or "answer" not in sample:
        raise ValueError("sample must be a dict with an 'answer' key")
    md = sample.get("metadata") or {}
    if not isinstance(md, dict):
        raise ValueError("sample['metadata'] must be a dict")
    options = parse_options(md.get("options"))
    gold = _gold_letter(sample["answer"], options)
    valid = _valid_letters(options, gold)
    try:
        pred: Optional[str] = extract_answer(completion)
        if pred is None:
            return 0.0
        named = named_options(pred, options, valid)
        return 1.0 if named == {gold} else 0.0
    except Exception:
        return 0.0
