"""The tool registry: name -> tool function, with the JSON schema the model is shown.

A tool is ``fn(ctx: ToolContext, **arguments) -> ToolOutput | str | PIL image | list of those``. Built-in tools
(`zoom_in`, `rotate`, `calculator`, `open_drawer`) register themselves when their module is imported, on the first
lookup. A user tool either uses `register_tool` in a module the config imports:

    from mmrft.tools import ToolOutput, register_tool

    @register_tool("count_pixels", description="Count the pixels of one colour in an image.",
                   parameters={"type": "object", "properties": {"colour": {"type": "string"}},
                               "required": ["colour"]})
    def count_pixels(ctx, colour): ...

or is named as ``"some.module:function"`` (imported and registered on first use; its schema is derived from its
signature and Google-style docstring, see `mmrft.tools.schema.derive_schema`).

The schema lives as registry info: ``TOOLS.info(name) == {"description": ..., "parameters": {...}}``.
"""

from __future__ import annotations

from typing import Any, Callable

from mmrft.registry import Registry
from mmrft.tools.schema import derive_schema

__all__ = ["TOOLS", "ToolFn", "register_tool", "tool_spec", "tool_schemas"]

ToolFn = Callable[..., Any]

_BUILTIN_MODULES = ("mmrft.tools.vision", "mmrft.tools.calculator", "mmrft.tools.drawers")

# name -> tool; "some.module:function" names are imported and registered under that string on first use
TOOLS: Registry[ToolFn] = Registry("tool", builtin_modules=_BUILTIN_MODULES, import_paths=True)


def register_tool(name: str, *, description: str, parameters: dict, override: bool = False
                  ) -> Callable[[ToolFn], ToolFn]:
    """Decorator registering ``fn`` as tool ``name`` with its JSON schema; returns ``fn`` unchanged.

    Args:
        name: what the model calls it (`{"name": name, ...}` in a `<tool_call>`).
        description: what it does, for the model.
        parameters: a JSON schema of type "object" for its keyword arguments (the subset
            `mmrft.tools.schema.validate_arguments` checks).
        override: replace a different tool already registered under ``name`` (else `ValueError`).
    """
    if not isinstance(description, str):
        raise TypeError(f"tool {name!r}: description must be a str")
    if not isinstance(parameters, dict) or parameters.get("type", "object") != "object":
        raise ValueError(f"tool {name!r}: parameters must be a JSON schema of type 'object', got {parameters!r}")

    def decorator(fn: ToolFn) -> ToolFn:
        if not callable(fn):
            raise TypeError(f"tool {name!r} must be callable, got {type(fn).__name__}")
        return TOOLS.register(name, override=override, description=description, parameters=parameters)(fn)

    return decorator


def tool_spec(name: str) -> dict:
    """``{"description", "parameters"}`` of tool ``name``: as registered, or derived from the function's signature
    and docstring (and then cached as its registry info). Unknown names raise ``KeyError`` listing the known ones;
    a ``module:function`` name is imported."""
    fn = TOOLS[name]
    info = TOOLS.info(name)
    if "parameters" not in info:
        info = derive_schema(fn)
        TOOLS.add(name, fn, override=True, **info)
    return {"description": info.get("description", ""), "parameters": info["parameters"]}


def tool_schemas(names: list[str]) -> list[dict]:
    """The tools ``names`` in the OpenAI / Hugging Face function-calling format that
    ``tokenizer.apply_chat_template(tools=...)`` accepts:
    ``[{"type": "function", "function": {"name", "description", "parameters"}}, …]``, in the order given."""
    if isinstance(names, str):
        raise TypeError("tool_schemas takes a list of tool names, not one string")
    out = []
    for name in names:
        spec = tool_spec(name)
        out.append({"type": "function",
                    "function": {"name": name, "description": spec["description"], "parameters": spec["parameters"]}})
    return out
