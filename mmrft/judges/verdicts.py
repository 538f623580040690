"""Verdict parsers: a generative judge's reply text -> a score in [0, 1].

A parser is `fn(reply_text: str, **options) -> float`; it raises `VerdictError` (a `ValueError`) quoting the
(truncated) reply when it cannot find a verdict, and never evaluates the reply as code. Parsers are the registry
`VERDICTS` (a judge's `verdict` option names one; `"some.module:function"` imports a user's); the options come from
the judge's `verdict_options`. Every built-in parser first drops the reasoning of thinking models: everything up to
the last `</think>` (a `<think>…</think>` block, or a reply whose opening tag was in the prompt); a reply cut off
inside an unclosed `<think>` has no verdict.

Built in:

* `yes_no`: 1.0 for yes, 0.0 for no.
* `scale(low=1, high=10)`: a score on the scale low..high, mapped linearly to [0, 1].
* `json_field(field="score", low=0, high=1)`: a number in the first JSON object of the reply, mapped to [0, 1].

`make_verdict(name, options)` checks the options once (unknown names, bad ranges) and returns a one-argument
callable, so that a misconfigured judge fails when it is built rather than on every reply.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Optional

from mmrft.registry import Registry

__all__ = ["VERDICTS", "VerdictError", "yes_no", "scale", "json_field", "strip_reasoning", "make_verdict"]

VERDICTS: Registry[Callable[..., float]] = Registry("verdict parser", import_paths=True)

QUOTE_LIMIT = 200


class VerdictError(ValueError):
    """A reply holds no verdict the parser can read (the message quotes the reply, truncated)."""


def quote(reply: str, limit: int = QUOTE_LIMIT) -> str:
    """`repr` of the reply, cut to `limit` characters (with the total length when cut), for error messages."""
    if len(reply) <= limit:
        return repr(reply)
    return f"{reply[:limit]!r}… ({len(reply)} characters)"


_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)


def strip_reasoning(reply: str) -> str:
    """The reply without its reasoning: the text after the last `</think>` when there is one; the text before an
    unclosed `<think>` otherwise (a reply cut off while thinking); else the whole reply."""
    closes = list(_THINK_CLOSE.finditer(reply))
    if closes:
        return reply[closes[-1].end():]
    opened = _THINK_OPEN.search(reply)
    if opened:
        return reply[: opened.start()]
    return reply


# -- yes / no ---------------------------------------------------------------------------------------------------

# A standalone yes/no: not part of a longer word or a hyphenated one ("yesterday", "nobody", "no-one").
_YES_NO = re.compile(r"(?<![\w-])(yes|no)(?![\w-])", re.IGNORECASE)
# What may stand between two opposite words that are then no verdict ("yes or no", "Yes/No", "No. Yes.").
_SEPARATOR = r"[\s*_\"'`.,;:!?/|()\[\]-]*"
_ALTERNATIVE = re.compile(rf"^{_SEPARATOR}(?:(?:or|and|nor){_SEPARATOR})?$", re.IGNORECASE)


@VERDICTS.register("yes_no")
def yes_no(reply_text: str) -> float:
    """1.0 for a yes, 0.0 for a no.

    The reply's reasoning is dropped first (`strip_reasoning`). The verdict is the **last** standalone "yes" or
    "no" word of what remains, in any case, with any punctuation or markdown around it ("Yes.", "**No**",
    "Answer: yes", "Verdict: NO"). So when both words occur, the last one wins: "No. The reference says 4, and
    the response says yes" reads as yes; a template should ask for the verdict last (the built-in ones ask for
    one word). Errors (`VerdictError`): neither word (outside the reasoning); the last word right next to the
    opposite one, with only punctuation, markdown or "or"/"and"/"nor" between them ("yes or no", "Yes/No",
    "No. Yes."): no verdict can be told from that.
    """
    text = strip_reasoning(reply_text)
    words = list(_YES_NO.finditer(text))
    if not words:
        raise VerdictError(f"no yes/no verdict in the reply {quote(reply_text)}")
    last = words[-1]
    if len(words) >= 2:
        before = words[-2]
        if before.group(1).lower() != last.group(1).lower() and _ALTERNATIVE.match(text[before.end(): last.start()]):
            raise VerdictError(f"ambiguous yes/no verdict ({before.group(1)!r} and {last.group(1)!r} as "
                               f"alternatives) in the reply {quote(reply_text)}")
    return 1.0 if last.group(1).lower() == "yes" else 0.0


# -- a number on a scale ------------------------------------------------------------------------------------------

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
# "Score: 7", "score = 7/10", "**Score:** 8", "Rating: 6", "Final score - 9" (the last one wins)
_SCORED = re.compile(
    rf"(?:score|rating|grade)[\s*_`\"']*(?:[:=\-]|is)?[\s*_`\"']*({_NUMBER})(?:\s*/\s*({_NUMBER}))?",
    re.IGNORECASE,
)
_BARE = re.compile(rf"(?<![\w.])({_NUMBER})(?:\s*/\s*({_NUMBER}))?(?![\w.])")


def _check_range(low: Any, high: Any, what: str) -> tuple[float, float]:
    try:
        lo, hi = float(low), float(high)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: low and high must be numbers, got low={low!r}, high={high!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"{what}: expected finite low < high, got low={low!r}, high={high!r}")
    return lo, hi


def _on_scale(value: float, lo: float, hi: float, reply: str, what: str) -> float:
    if not math.isfinite(value) or not lo <= value <= hi:
        raise VerdictError(f"{what} {value:g} is outside the scale {lo:g}..{hi:g} in the reply {quote(reply)}")
    return (value - lo) / (hi - lo)


@VERDICTS.register("scale")
def scale(reply_text: str, low: float = 1, high: float = 10) -> float:
    """A score on the scale `low`..`high` mapped linearly to [0, 1]: (x - low) / (high - low).

    After dropping the reasoning, the score is the number after the last "Score"/"Rating"/"Grade" label
    ("Score: 7", "**Score:** 7", "score = 7/10", "Rating is 8"); without a label, a reply with exactly one number
    ("7", "**8**", "8/10.") is that number. "N/M" must have M equal to `high`. Errors (`VerdictError`): no
    number; several numbers and no label; a score outside low..high; a denominator other than `high`.
    """
    lo, hi = _check_range(low, high, "scale verdict")
    text = strip_reasoning(reply_text)
    labelled = list(_SCORED.finditer(text))
    if labelled:
        match = labelled[-1]
    else:
        numbers = list(_BARE.finditer(text))
        if not numbers:
            raise VerdictError(f"no score (expected `Score: N`, N in {lo:g}..{hi:g}) in the reply {quote(reply_text)}")
        if len(numbers) > 1:
            raise VerdictError(f"several numbers and no `Score: N` label in the reply {quote(reply_text)}")
        match = numbers[0]
    value = float(match.group(1))
    if match.group(2) is not None and float(match.group(2)) != hi:
        raise VerdictError(f"score {match.group(0).strip()!r} is out of {match.group(2)}, not of {hi:g}, in the "
                           f"reply {quote(reply_text)}")
    return _on_scale(value, lo, hi, reply_text, "score")


# -- a field of a JSON object -------------------------------------------------------------------------------------

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


def _first_object(text: str) -> Optional[dict]:
    """The first JSON object in `text` (decoded from each `{` in turn), or None."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


@VERDICTS.register("json_field")
def json_field(reply_text: str, field: str = "score", low: float = 0.0, high: float = 1.0) -> float:
    """The number at `field` of the first JSON object in the reply, in [`low`, `high`], mapped to [0, 1].

    After dropping the reasoning, a ```json fenced block is read first, else the first `{...}` that decodes as a
    JSON object (with `json`, never evaluated). `field` may be a dotted path ("verdict.score"). The value must be
    a JSON number, or a string holding one ("0.8"); booleans are not numbers. Errors (`VerdictError`): no JSON
    object; the field missing; not a number; NaN/infinite; outside [low, high].
    """
    lo, hi = _check_range(low, high, "json_field verdict")
    if not isinstance(field, str) or not field:
        raise ValueError(f"json_field verdict: field must be a non-empty string, got {field!r}")
    text = strip_reasoning(reply_text)
    obj = None
    for fenced in _FENCE.finditer(text):
        obj = _first_object(fenced.group(1))
        if obj is not None:
            break
    if obj is None:
        obj = _first_object(text)
    if obj is None:
        raise VerdictError(f"no JSON object in the reply {quote(reply_text)}")
    value: Any = obj
    for key in field.split("."):
        if not isinstance(value, dict) or key not in value:
            raise VerdictError(f"JSON object has no field {field!r} in the reply {quote(reply_text)}")
        value = value[key]
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise VerdictError(f"field {field!r} is {value!r}, not a number, in the reply {quote(reply_text)}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise VerdictError(f"field {field!r} is {json.dumps(value)}, not a number, in the reply {quote(reply_text)}")
    return _on_scale(float(value), lo, hi, reply_text, f"field {field!r} =")


# -- building a parser from a judge's options ---------------------------------------------------------------------


def make_verdict(name: str, options: Optional[Mapping[str, Any]] = None, *, judge: str = "?") -> Callable[[str], float]:
    """The parser `name` (a `VERDICTS` name or "module:function") bound to `options`, as `fn(reply) -> float`.

    Checked here, with messages naming the judge: an unknown parser (`KeyError` listing the known ones), option
    names the parser does not take (`TypeError` listing those it takes), and, for the built-ins, their ranges and
    field (`ValueError`)."""
    fn = VERDICTS[name]
    opts = dict(options or {})
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin or C callable: take the options on trust
        params = None
    if params is not None and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        accepted = [p for i, p in enumerate(params) if i > 0]
        unknown = sorted(set(opts) - set(accepted))
        if unknown:
            raise TypeError(f"judge {judge!r}: verdict parser {name!r} does not take option(s) {', '.join(unknown)}"
                            f"; it takes: {', '.join(accepted) or 'no options'}")
    if fn is scale:
        _check_range(opts.get("low", 1), opts.get("high", 10), f"judge {judge!r}: verdict_options of scale")
    elif fn is json_field:
        _check_range(opts.get("low", 0.0), opts.get("high", 1.0), f"judge {judge!r}: verdict_options of json_field")
        if not isinstance(opts.get("field", "score"), str) or not opts.get("field", "score"):
            raise ValueError(f"judge {judge!r}: verdict_options.field of json_field must be a non-empty string")
    return functools.partial(fn, **opts) if opts else fn
