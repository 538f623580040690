"""Pull the final answer out of a model completion.

:func:`extract_answer` is shared by the graders so that they all agree on *what*
the model answered.  Extraction order (first rule that applies wins):

1. **Answer tags** (searched in the whole completion, tags case-insensitive):
   the content of the last ``<answer>…</answer>`` block.  A final ``<answer>``
   that is never closed (generation stopped on ``</answer>`` as a stop string,
   which most engines strip) counts as a block running to the end of the text,
   if it has content.  An empty block means "no answer" (``None``).  If the
   block contains a ``\\boxed{…}``, the last boxed content inside it is
   returned instead.
2. **Reasoning is skipped**: if there is a ``</think>``, only the text after the
   last one is searched below; if there is a ``<think>`` that is never closed the
   completion was truncated mid-reasoning and ``None`` is returned.
3. **Boxed**: the content of the last complete ``\\boxed{…}`` or ``\\fbox{…}``
   (nested braces matched; ``\\boxed 5`` also accepted).
4. **Answer phrase**: the text after the last "answer is" / "answer:" /
   "answer =" (e.g. "The final answer is 42.", "**Answer:** B"), up to the end of
   that line or the first ". " sentence break; if nothing follows on that line
   the next non-empty line is used ("Final Answer:\\n42").
5. **Last line**: the last non-empty line.

The result is stripped of surrounding whitespace and markdown ``*`` and of
trailing periods; an empty result is ``None``.

Everything here is linear in the input length: only ``str.find``-style scans,
one pass over brace characters, and regexes without nested quantifiers.
"""

from __future__ import annotations

import re
from typing import Optional

__all__ = ["extract_answer", "last_boxed", "answer_block"]

_BOXED_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_BRACE_RE = re.compile(r"[{}]")
_BOXED_TOKEN_RE = re.compile(r"[ \t]+([^\s$]+)")
_PHRASE_RE = re.compile(r"\banswer(?:\*\*|[ \t])*(?:is\b|:|=)(?:\*\*|[ \t:])*", re.IGNORECASE)
_SENTENCE_END_RE = re.compile(r"\.\s")

_OPEN_ANSWER, _CLOSE_ANSWER = "<answer>", "</answer>"
_OPEN_THINK, _CLOSE_THINK = "<think>", "</think>"


def _clean(s: Optional[str]) -> Optional[str]:
    if s is None:
        return None
    prev = None
    while prev != s:
        prev = s
        s = s.strip().strip("*").rstrip(".")
    return s or None


def answer_block(text: str) -> Optional[str]:
    """Raw content of the last ``<answer>`` block (rule 1 above), or ``None``."""
    low = text.lower()
    last_open = low.rfind(_OPEN_ANSWER)
    if last_open < 0:
        return None
    close_after = low.find(_CLOSE_ANSWER, last_open)
    if close_after >= 0:
        return text[last_open + len(_OPEN_ANSWER) : close_after]
    # Unclosed final block: accept it if it has content, else use the last closed one.
    tail = text[last_open + len(_OPEN_ANSWER) :]
    if tail.strip():
        return tail
    close = low.rfind(_CLOSE_ANSWER, 0, last_open)
    if close < 0:
        return None
    open_ = low.rfind(_OPEN_ANSWER, 0, close)
    if open_ < 0:
        return None
    return text[open_ + len(_OPEN_ANSWER) : close]


def last_boxed(text: str) -> Optional[str]:
    """Content of the last complete ``\\boxed{…}`` / ``\\fbox{…}`` in ``text``, or ``None``."""
    starts = [m.end() for m in _BOXED_RE.finditer(text)]
    if not starts:
        return None
    # One pass over the brace characters from the first \boxed: matching close for each open.
    match: dict = {}
    stack = []
    for m in _BRACE_RE.finditer(text, starts[0]):
        if m.group() == "{":
            stack.append(m.start())
        elif stack:
            match[stack.pop()] = m.start()
    n = len(text)
    for pos in reversed(starts):
        j = pos
        while j < n and text[j] in " \t":
            j += 1
        if j < n and text[j] == "{":
            end = match.get(j)
            if end is not None:
                return text[j + 1 : end]
            continue  # truncated / unbalanced: try an earlier one
        tok = _BOXED_TOKEN_RE.match(text, pos)
        if tok:
            return tok.group(1)
    return None


def _answer_phrase(text: str) -> Optional[str]:
    last = None
    for last in _PHRASE_RE.finditer(text):
        pass
    if last is None:
        return None
    rest = text[last.end() :]
    nl = rest.find("\n")
    line = rest if nl < 0 else rest[:nl]
    if not line.strip() and nl >= 0:
        for candidate in rest[nl + 1 :].split("\n"):
            if candidate.strip():
                line = candidate
                break
    cut = _SENTENCE_END_RE.search(line)
    if cut:
        line = line[: cut.start()]
    return line if line.strip() else None


def _last_line(text: str) -> Optional[str]:
    stripped = text.rstrip()
    if not stripped:
        return None
    return stripped[stripped.rfind("\n") + 1 :]


def extract_answer(text: str) -> Optional[str]:
    """The model's final answer as a string, or ``None`` (see module docstring for the order)."""
    if not isinstance(text, str) or not text:
        return None
    block = answer_block(text)
    if block is not None:
        inner = last_boxed(block)
        return _clean(inner if inner is not None else block)
    low = text.lower()
    close = low.rfind(_CLOSE_THINK)
    if close >= 0:
        text = text[close + len(_CLOSE_THINK) :]
    elif _OPEN_THINK in low:
        return None
    for rule in (last_boxed, _answer_phrase, _last_line):
        found = _clean(rule(text))
        if found is not None:
            return found
    return None
