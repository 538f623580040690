"""Running one tool call safely: `run_tool_call` never raises on anything the model wrote or a tool did.

Every failure becomes a `ToolOutput` whose `text` is a one-line message the model can read ("Error: …", naming the
problem) and whose `error` is a short kind:

| kind | when |
|---|---|
| `parse_error` | the `<tool_call>` block could not be parsed (a `ToolCallError` was passed in) |
| `unknown_tool` | no tool of that name, or one not in `allowed` |
| `bad_arguments` | the arguments do not fit the tool's schema, or the tool raised `ToolError(kind="bad_arguments")` |
| `tool_error` | the tool raised (any exception, or `ToolError`), or returned something that is not an output |
| `timeout` | the tool ran longer than `timeout_s` |

The time limit is the rewards' SIGALRM one (`mmrft.rewards.worker.time_limit`), so it interrupts pure-Python loops
too; signals work only in the main thread, so off it the call runs untimed. When a SIGALRM timer is already armed
(the caller runs under its own time limit, e.g. inside a reward worker), it is left alone and this call runs
untimed under the caller's limit, whose `RewardTimeout` then reaches the caller as it should.

Model-written names never import code: a `module:function` tool is run only when it is already registered or is
named in `allowed` (that is, the run's config chose it).
"""

from __future__ import annotations

import signal
import threading
from typing import Optional, Union

from mmrft.rewards.worker import RewardTimeout, time_limit, timeout_handler
from mmrft.tools.base import ToolCall, ToolCallError, ToolContext, ToolError, ToolOutput, normalise_output
from mmrft.tools.images import fit_pixels
from mmrft.tools.registry import TOOLS, tool_spec
from mmrft.tools.schema import validate_arguments

__all__ = ["MAX_TEXT_CHARS", "run_tool_call"]

#: A tool's text longer than this is cut (with a note), so one call cannot flood the model's context.
MAX_TEXT_CHARS = 4000
_MAX_MESSAGE_CHARS = 300


def run_tool_call(call: Union[ToolCall, ToolCallError], ctx: ToolContext, timeout_s: float = 5.0,
                  allowed: Optional[list[str]] = None) -> ToolOutput:
    """Run `call` against `ctx` and return its output; failures are outputs with `error` set (see the module
    docstring). Images the tool returns are fitted into `ctx.max_pixels` / `ctx.min_pixels`. `ctx` is not
    changed: appending the returned images to `ctx.returned` is the caller's job."""
    if isinstance(call, ToolCallError):
        return _fail("parse_error", f"could not parse the tool call: {call.message}")
    if not isinstance(call, ToolCall):
        return _fail("parse_error", f"not a tool call: {type(call).__name__}")
    name = call.name
    try:
        fn = _lookup(name, allowed)
    except KeyError as e:  # a `module:function` tool the config chose that does not import
        return _fail("tool_error", f"tool {name!r} cannot be loaded: {_short(e.args[0] if e.args else e)}")
    if fn is None:
        known = list(allowed) if allowed is not None else [n for n in TOOLS.names() if ":" not in n]
        return _fail("unknown_tool", f"unknown tool {_short(name)!r}; available tools: {', '.join(known) or 'none'}")
    try:
        spec = tool_spec(name)
    except Exception as e:  # a schema that cannot be derived is the tool's fault, not the model's
        return _fail("tool_error", f"tool {name!r} cannot be used: {_exc_text(e)}")
    arguments, problem = validate_arguments(call.arguments, spec["parameters"])
    if problem is not None:
        return _fail("bad_arguments", f"bad arguments for {name}: {problem}")
    try:
        result = _call_with_limit(fn, ctx, arguments, timeout_s)
    except _TimedOut:
        return _fail("timeout", f"{name} took longer than {timeout_s:g} s and was stopped")
    except ToolError as e:
        return _fail(e.kind or "tool_error", f"{name}: {_short(e.message)}")
    except (Exception, SystemExit) as e:
        return _fail("tool_error", f"{name} failed: {_exc_text(e)}")
    try:
        out = normalise_output(result)
        images = [fit_pixels(im, ctx.max_pixels, ctx.min_pixels) for im in out.images]
    except Exception as e:
        return _fail("tool_error", f"{name} failed: {_exc_text(e)}")
    text = out.text if len(out.text) <= MAX_TEXT_CHARS else out.text[:MAX_TEXT_CHARS] + " ... (output truncated)"
    return ToolOutput(text=text, images=images, error=out.error, info=dict(out.info))


class _TimedOut(Exception):
    pass


def _lookup(name: str, allowed: Optional[list[str]]):
    """The tool `name`, or None when unknown or not allowed. Never imports a module for a name the config did not
    choose; an allowed `module:function` that fails to import raises `KeyError` (the registry's message)."""
    if not isinstance(name, str) or not name:
        return None
    if allowed is not None and name not in allowed:
        return None
    if name in TOOLS:  # registered (built-ins loaded); imports nothing
        return TOOLS[name]
    if ":" in name and allowed is not None:
        return TOOLS[name]
    return None


def _call_with_limit(fn, ctx: ToolContext, arguments: dict, timeout_s: float):
    timed = (threading.current_thread() is threading.main_thread() and timeout_s is not None and timeout_s > 0
             and signal.getitimer(signal.ITIMER_REAL)[0] == 0)
    try:
        with timeout_handler(timed), time_limit(timeout_s, timed):
            return fn(ctx, **arguments)
    except RewardTimeout:
        if timed:
            raise _TimedOut() from None
        raise  # the caller's own time limit


def _fail(kind: str, message: str) -> ToolOutput:
    return ToolOutput(text=f"Error: {message}", error=kind)


def _short(s: str) -> str:
    s = str(s)
    return s if len(s) <= _MAX_MESSAGE_CHARS else s[:_MAX_MESSAGE_CHARS] + "..."


def _exc_text(e: BaseException) -> str:
    try:
        msg = str(e)
    except Exception:
        msg = ""
    return _short(f"{type(e).__name__}: {msg}" if msg else type(e).__name__)
