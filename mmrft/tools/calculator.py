"""Built-in `calculator` tool: a safe arithmetic evaluator.

The expression is parsed with Python's `ast` and evaluated by walking the tree, allowing only: int and float
literals, `+ - * / // % **`, unary `+ -`, parentheses, the constants `pi` and `e`, and the functions `sqrt`, `abs`,
`round`, `min`, `max`, `log` (`log(x)` or `log(x, base)`), `exp`, `sin`, `cos`, `tan` (radians). Any other node
(names, attributes, subscripts, strings, comparisons, lambdas, keyword arguments, …) is refused before anything is
evaluated. `eval` / `exec` are never used.

Limits, so that one call cannot hang or exhaust memory (the runner's time limit is the backstop, not the plan):

* `MAX_CHARS` (200) characters of expression;
* a power's exponent at most `MAX_EXPONENT` (1000) in absolute value;
* integers at most `MAX_INT_BITS` (4096) bits, about 1233 digits, checked before a power is computed and after
  every operation (exact integer arithmetic is kept: 2**100 is 1267650600228229401496703205376);
* `round`'s digits within ±`MAX_ROUND_DIGITS` (15).

A division by zero, a math domain error (sqrt(-1), log(0)), an overflow, a complex or non-finite result are
errors the model reads ("Error: calculator: division by zero"). `^` is refused with a hint to use `**`.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Callable, Union

from mmrft.tools.base import ToolContext, ToolError
from mmrft.tools.registry import register_tool

__all__ = ["MAX_CHARS", "MAX_EXPONENT", "MAX_INT_BITS", "MAX_ROUND_DIGITS", "calculator", "evaluate", "format_number"]

MAX_CHARS = 200
MAX_EXPONENT = 1000
MAX_INT_BITS = 4096
MAX_ROUND_DIGITS = 15

Number = Union[int, float]

_BINARY: dict[type, Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}


def _round(x: Number, digits: Number = None):  # type: ignore[assignment]
    if digits is None:
        return round(x)
    if not isinstance(digits, int):
        raise _Refused("round's second argument must be an integer")
    if abs(digits) > MAX_ROUND_DIGITS:
        raise _Refused(f"round's digits must be within ±{MAX_ROUND_DIGITS}")
    return round(x, digits)


def _log(x: Number, base: Number = None):  # type: ignore[assignment]
    return math.log(x) if base is None else math.log(x, base)


# name -> (function, least and most arguments; None: no upper bound)
_FUNCTIONS: dict[str, tuple[Callable, int, Union[int, None]]] = {
    "sqrt": (math.sqrt, 1, 1),
    "abs": (abs, 1, 1),
    "round": (_round, 1, 2),
    "min": (lambda *a: min(a), 1, None),
    "max": (lambda *a: max(a), 1, None),
    "log": (_log, 1, 2),
    "exp": (math.exp, 1, 1),
    "sin": (math.sin, 1, 1),
    "cos": (math.cos, 1, 1),
    "tan": (math.tan, 1, 1),
}


class _Refused(Exception):
    """An expression outside the allowed language (reported as bad arguments)."""


def evaluate(expression: str) -> Number:
    """The value of the arithmetic `expression`; `ToolError` (kind "bad_arguments" for an expression outside the
    allowed language or limits, "tool_error" for a math error such as a division by zero) otherwise."""
    if not isinstance(expression, str):
        raise ToolError("the expression must be a string", kind="bad_arguments")
    if len(expression) > MAX_CHARS:
        raise ToolError(f"the expression is too long ({len(expression)} characters; at most {MAX_CHARS})",
                        kind="bad_arguments")
    text = expression.strip()
    if not text:
        raise ToolError("the expression is empty", kind="bad_arguments")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
        detail = getattr(e, "msg", None) or type(e).__name__
        raise ToolError(f"cannot parse {text!r}: {detail}", kind="bad_arguments") from None
    try:
        value = _eval(tree.body)
    except _Refused as e:
        raise ToolError(str(e), kind="bad_arguments") from None
    except ZeroDivisionError:
        raise ToolError("division by zero") from None
    except OverflowError:
        raise ToolError("the result is too large") from None
    except (ValueError, TypeError) as e:
        raise ToolError(f"math error: {e}") from None
    except RecursionError:
        raise ToolError("the expression is nested too deeply", kind="bad_arguments") from None
    return value


def _eval(node: ast.AST) -> Number:
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Refused(f"only numbers are allowed, not {value!r}")
        return _checked(value)
    if isinstance(node, ast.BinOp):
        op = type(node.op)
        if op is ast.BitXor:
            raise _Refused("'^' is not a power here; use ** (e.g. 2**3)")
        if op is ast.Pow:
            return _power(_eval(node.left), _eval(node.right))
        if op not in _BINARY:
            raise _Refused(f"the operator {_op_symbol(node.op)} is not allowed (use + - * / // % **)")
        return _checked(_BINARY[op](_eval(node.left), _eval(node.right)))
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.USub):
            return _checked(-_eval(node.operand))
        if isinstance(node.op, ast.UAdd):
            return _eval(node.operand)
        raise _Refused(f"the operator {_op_symbol(node.op)} is not allowed")
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise _Refused(f"unknown name {node.id!r} (allowed: pi, e and the functions {', '.join(_FUNCTIONS)})")
    if isinstance(node, ast.Call):
        return _call(node)
    raise _Refused(f"{_node_name(node)} is not allowed in an arithmetic expression")


def _call(node: ast.Call) -> Number:
    if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
        what = node.func.id if isinstance(node.func, ast.Name) else _node_name(node.func)
        raise _Refused(f"unknown function {what!r} (allowed: {', '.join(_FUNCTIONS)})")
    name = node.func.id
    if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
        raise _Refused(f"{name}() takes plain positional arguments only")
    fn, least, most = _FUNCTIONS[name]
    n = len(node.args)
    if n < least or (most is not None and n > most):
        expected = str(least) if least == most else f"{least} or {most}" if most else f"at least {least}"
        plural = "" if expected.endswith(" 1") or expected == "1" else "s"
        raise _Refused(f"{name}() takes {expected} argument{plural}, got {n}")
    args = [_eval(a) for a in node.args]
    return _checked(fn(*args))


def _power(base: Number, exponent: Number) -> Number:
    if abs(exponent) > MAX_EXPONENT:
        raise _Refused(f"the exponent {exponent} is too large (at most {MAX_EXPONENT} in absolute value)")
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        if (abs(base).bit_length() - 1) * exponent > MAX_INT_BITS:
            raise _Refused(f"the result would be too large (more than {MAX_INT_BITS} bits)")
    return _checked(operator.pow(base, exponent))


def _checked(value) -> Number:
    if isinstance(value, complex):
        raise ValueError("the result is not a real number")
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > MAX_INT_BITS:
            raise _Refused(f"the result would be too large (more than {MAX_INT_BITS} bits)")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise OverflowError()
        return value
    raise _Refused(f"unexpected value of type {type(value).__name__}")


def _op_symbol(op: ast.AST) -> str:
    symbols = {ast.BitAnd: "&", ast.BitOr: "|", ast.LShift: "<<", ast.RShift: ">>", ast.MatMult: "@",
               ast.Invert: "~", ast.Not: "not"}
    return repr(symbols.get(type(op), type(op).__name__))


def _node_name(node: ast.AST) -> str:
    names = {ast.Attribute: "attribute access (a.b)", ast.Subscript: "indexing (a[b])", ast.Compare: "a comparison",
             ast.BoolOp: "and/or", ast.Lambda: "a lambda", ast.IfExp: "if/else", ast.List: "a list",
             ast.Tuple: "a tuple", ast.Dict: "a dict", ast.Set: "a set", ast.JoinedStr: "an f-string",
             ast.NamedExpr: "assignment (:=)"}
    return names.get(type(node), type(node).__name__)


def format_number(value: Number) -> str:
    """How the model reads a result: integers exactly, floats to 12 significant digits (0.1 + 0.2 -> 0.3,
    6 / 3 -> 2)."""
    if isinstance(value, int):
        return str(value)
    return format(value, ".12g")


@register_tool(
    "calculator",
    description="Evaluate an arithmetic expression: numbers, + - * / // % ** and parentheses, the constants pi and "
                "e, and the functions sqrt, abs, round, min, max, log, exp, sin, cos, tan (radians).",
    parameters={
        "type": "object",
        "properties": {
            "expression": {"type": "string", "description": "The expression, e.g. \"(3 + 4) * sqrt(2)\"."},
        },
        "required": ["expression"],
    },
)
def calculator(ctx: ToolContext, expression: str) -> str:
    """The value of `expression` as text, e.g. "(3 + 4) * 2 = 14"."""
    value = evaluate(expression)
    return f"{expression.strip()} = {format_number(value)}"
