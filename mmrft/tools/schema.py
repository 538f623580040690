"""Tool argument schemas: checking a call's arguments against its JSON schema, and deriving a schema from a plain
function's signature and docstring.

Why a hand-written validator and not the `jsonschema` package: `jsonschema` is not among mmrft's dependencies (nor
installed in the project's environment as a dependency of one), and tool schemas use a small subset of JSON Schema.
The subset here, and its error messages, are written for the model: each message names the argument and what was
expected, so the model can correct its next call.

The subset: `type` ("object", "string", "number", "integer", "boolean", "array", "null", or a list of them),
`nullable`, `properties`, `required`, `additionalProperties` (a bool), `items`, `prefixItems`, `minItems`,
`maxItems`, `enum`, `minimum`, `maximum`, `anyOf`. Other keywords (`description`, `default`, `format`, …) are
ignored. Deviations from JSON Schema, on purpose for tool calls:

* an object rejects keys not in its `properties` unless it says `"additionalProperties": true` (the call would
  otherwise fail inside the tool with a Python `TypeError` the model cannot act on);
* `true` / `false` are never numbers (in Python `bool` is an `int`; in JSON they are different types);
* numbers must be finite (`NaN` and `Infinity` are accepted by Python's `json` but are no coordinates);
* an "integer" may be written as an integral float (`2.0`), and is passed to the tool as an `int`.
"""

from __future__ import annotations

import inspect
import math
import typing
from typing import Any, Callable, Optional

__all__ = ["derive_schema", "validate_arguments"]

_JSON_TYPES = ("object", "string", "number", "integer", "boolean", "array", "null")


class _Invalid(Exception):
    pass


def validate_arguments(arguments: Any, schema: dict) -> tuple[dict, Optional[str]]:
    """Check `arguments` against the `parameters` schema of a tool.

    Returns `(arguments, None)` when they fit (integral floats given for integers converted to `int`), else
    `(arguments, message)` with a one-line message naming the first problem, e.g. "'bbox_2d' must have at least 4
    items, got 3".
    """
    try:
        return _check(arguments, schema or {"type": "object"}, ""), None
    except _Invalid as e:
        return arguments, str(e)


def _where(path: str) -> str:
    return f"'{path}'" if path else "the arguments"


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _matches_type(value: Any, t: str) -> bool:
    if t == "null":
        return value is None
    if t == "boolean":
        return isinstance(value, bool)
    if t == "string":
        return isinstance(value, str)
    if t == "array":
        return isinstance(value, (list, tuple))
    if t == "object":
        return isinstance(value, dict)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if t == "number":
        return True
    if t == "integer":
        return isinstance(value, int) or (math.isfinite(value) and float(value).is_integer())
    return True  # an unknown type name constrains nothing


def _check(value: Any, schema: Any, path: str) -> Any:
    if not isinstance(schema, dict):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise _Invalid(f"{_where(path)} must be a finite number, got {value}")
    if "anyOf" in schema and isinstance(schema["anyOf"], list):
        for option in schema["anyOf"]:
            try:
                value = _check(value, option, path)
                break
            except _Invalid:
                continue
        else:
            raise _Invalid(f"{_where(path)} matches none of the allowed forms")
    if value is None and schema.get("nullable"):
        return value
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else list(types)
        matched = next((t for t in types if _matches_type(value, t)), None)
        if matched is None:
            wanted = " or ".join(_article(t) for t in types)
            raise _Invalid(f"{_where(path)} must be {wanted}, got {_type_name(value)}")
        if matched == "integer" and isinstance(value, float):
            value = int(value)
    if "enum" in schema and isinstance(schema["enum"], list):
        if not any(isinstance(value, bool) == isinstance(option, bool) and value == option
                   for option in schema["enum"]):
            options = ", ".join(repr(o) for o in schema["enum"])
            raise _Invalid(f"{_where(path)} must be one of {options}, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        low, high = schema.get("minimum"), schema.get("maximum")
        if isinstance(low, (int, float)) and value < low:
            raise _Invalid(f"{_where(path)} must be at least {low}, got {value}")
        if isinstance(high, (int, float)) and value > high:
            raise _Invalid(f"{_where(path)} must be at most {high}, got {value}")
    if isinstance(value, dict):
        value = _check_object(value, schema, path)
    elif isinstance(value, (list, tuple)):
        value = _check_array(list(value), schema, path)
    return value


def _article(t: str) -> str:
    return {"object": "an object", "array": "an array", "integer": "an integer", "null": "null"}.get(t, f"a {t}")


def _check_object(value: dict, schema: dict, path: str) -> dict:
    properties = schema.get("properties") or {}
    for key in schema.get("required") or ():
        if key not in value:
            raise _Invalid(f"missing required argument {_join(path, key)!r}" if not path else
                           f"{_where(path)} is missing the key {key!r}")
    extra = [k for k in value if k not in properties]
    if extra and schema.get("additionalProperties") is not True:
        allowed = ", ".join(repr(k) for k in properties) or "none"
        what = "argument" if not path else f"key in {_where(path)}"
        raise _Invalid(f"unexpected {what} {extra[0]!r} (allowed: {allowed})")
    out = dict(value)
    for key, sub in properties.items():
        if key in value:
            out[key] = _check(value[key], sub, _join(path, key))
    return out


def _check_array(value: list, schema: dict, path: str) -> list:
    low, high = schema.get("minItems"), schema.get("maxItems")
    if isinstance(low, int) and isinstance(high, int) and low == high and len(value) != low:
        raise _Invalid(f"{_where(path)} must have exactly {low} items, got {len(value)}")
    if isinstance(low, int) and len(value) < low:
        raise _Invalid(f"{_where(path)} must have at least {low} items, got {len(value)}")
    if isinstance(high, int) and len(value) > high:
        raise _Invalid(f"{_where(path)} must have at most {high} items, got {len(value)}")
    prefix = schema.get("prefixItems")
    items = schema.get("items")
    out = []
    for i, item in enumerate(value):
        if isinstance(prefix, list) and i < len(prefix):
            sub = prefix[i]
        else:
            sub = items
        out.append(_check(item, sub, f"{path}[{i}]"))
    return out


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# ----------------------------------------------------------------------------------- schemas from signatures


def derive_schema(fn: Callable) -> dict:
    """`{"description", "parameters"}` of a tool function that was registered without a schema (a
    `module:function` tool), from its signature and docstring.

    The first parameter receives the `ToolContext` and is left out. The rest go through
    `transformers.utils.get_json_schema` (Google-style docstring, type hints: the same schema a chat template would
    get from transformers' own tools support); when that refuses (no docstring, an argument without a description
    or type hint, a hint it cannot express), a minimal schema is built instead: every parameter with an
    unconstrained value, those without a default required, and the docstring's first paragraph as the description.
    """
    name = getattr(fn, "__name__", "tool")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return {"description": _summary(fn), "parameters": {"type": "object", "properties": {},
                                                             "additionalProperties": True}}
    params = list(signature.parameters.values())[1:]  # the first one is the ToolContext
    try:
        from transformers.utils import get_json_schema

        shim = _shim(fn, name, signature, params)
        schema = get_json_schema(shim)
        schema = schema.get("function", schema)
        parameters = schema.get("parameters") or {"type": "object", "properties": {}}
        return {"description": schema.get("description") or _summary(fn), "parameters": parameters}
    except Exception:
        return {"description": _summary(fn), "parameters": _minimal_parameters(params)}


def _shim(fn: Callable, name: str, signature: inspect.Signature, params: list[inspect.Parameter]) -> Callable:
    """A stand-in for `fn` without its context parameter, for `get_json_schema` (which reads `__signature__`,
    `__annotations__`, `__doc__` and `__name__`)."""
    hints = typing.get_type_hints(fn)  # resolves string annotations (`from __future__ import annotations`)

    def shim(*args, **kwargs):  # pragma: no cover - never called
        raise NotImplementedError

    shim.__name__ = name
    shim.__doc__ = inspect.getdoc(fn)
    shim.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    shim.__annotations__ = {p.name: hints[p.name] for p in params if p.name in hints}
    return shim


def _minimal_parameters(params: list[inspect.Parameter]) -> dict:
    properties: dict[str, dict] = {}
    required = []
    open_ended = False
    for p in params:
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            open_ended = True
            continue
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
            continue
        properties[p.name] = {}
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    if open_ended:
        out["additionalProperties"] = True
    return out


def _summary(fn: Callable) -> str:
    doc = inspect.getdoc(fn) or ""
    return doc.split("\n\n", 1)[0].strip()
