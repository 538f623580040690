"""Environments: what answers an assistant turn in a multi-turn rollout.

The rollout loop drives one environment per trajectory:

    env = ENVIRONMENTS["tools"](tools=["zoom_in"], timeout_s=5.0)   # or make_environment(name, **options)
    obs = env.reset(sample, ctx)          # the first observation beyond the prompt (often empty)
    while not obs.done:
        text = <generate one assistant turn>
        obs = env.step(text)              # the tools' answer as a `tool` turn, or done when the model answered
        # obs.text / obs.images go into the next message (observation_content builds its content list)

`ToolEnvironment` is the stateless case: each turn's tool calls are run and their outputs returned; a turn without
a call is the answer. An environment never raises on model text: a bad call is an observation whose text says
what was wrong (and `info["errors"]` lists the kinds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Union, runtime_checkable

from mmrft.registry import Registry
from mmrft.tools.base import ToolCall, ToolCallError, ToolContext, ToolOutput
from mmrft.tools.parsing import parse_tool_calls
from mmrft.tools.prompting import format_tool_response
from mmrft.tools.registry import tool_schemas
from mmrft.tools.runner import run_tool_call

__all__ = [
    "ENVIRONMENTS",
    "Environment",
    "Observation",
    "ToolEnvironment",
    "make_environment",
    "observation_content",
    "register_environment",
]


@dataclass
class Observation:
    """The environment's answer to one assistant turn (or to `reset`).

    Attributes:
        text: what the model reads next (for tool calls: one `<tool_response>` block per call, in order).
        images: images for the model, in order; they take the next image indices.
        reward: a reward the environment gives (e.g. when the answer is checked on `done`), else `None`.
        done: the trajectory is over (the model answered).
        info: facts for logging: `calls` (one dict per call: name, arguments, error, images (a count), text) and
            `errors` (the error kinds of the failed calls, in order).
    """

    text: str = ""
    images: list = field(default_factory=list)
    reward: Optional[float] = None
    done: bool = False
    info: dict = field(default_factory=dict)


@runtime_checkable
class Environment(Protocol):
    """What the rollout loop needs of an environment."""

    def reset(self, sample: dict, ctx: ToolContext) -> Observation:
        """Start a trajectory for `sample`; `ctx` holds its images and the model's conventions."""
        ...

    def step(self, assistant_text: str) -> Observation:
        """The environment's answer to one assistant turn."""
        ...


# name -> class or factory taking keyword options; "some.module:Class" names are imported on first use
ENVIRONMENTS: Registry[Callable[..., Environment]] = Registry(
    "environment", builtin_modules=("mmrft.tools.drawers",), import_paths=True)


def register_environment(name: str, *, override: bool = False):
    """Decorator registering an environment class (or a factory taking keyword options) under `name`."""

    def decorator(factory):
        if not callable(factory):
            raise TypeError(f"environment {name!r} must be a class or factory, got {type(factory).__name__}")
        return ENVIRONMENTS.register(name, override=override)(factory)

    return decorator


def make_environment(name: str, **options: Any) -> Environment:
    """`ENVIRONMENTS[name](**options)`."""
    return ENVIRONMENTS[name](**options)


@register_environment("tools")
class ToolEnvironment:
    """Runs the tool calls of each assistant turn; a turn without a call is the model's answer (`done=True`).

    Args:
        tools: the tool names the model may call (others are answered "unknown tool").
        timeout_s: time limit of one call.
        max_calls_per_turn: calls beyond this many in one turn are not run; each is answered with an error
            ("too_many_calls").

    Every image a call returns is appended to `ctx.returned`, so image indices keep counting across calls and
    turns. Subclasses change what a call does (`run_call`) or what an answer earns (`answer`).
    """

    def __init__(self, tools: list[str], timeout_s: float = 5.0, max_calls_per_turn: int = 4) -> None:
        if isinstance(tools, str):
            tools = [tools]
        self.tools = list(tools)
        self.timeout_s = float(timeout_s)
        if max_calls_per_turn < 1:
            raise ValueError(f"max_calls_per_turn must be at least 1, got {max_calls_per_turn}")
        self.max_calls_per_turn = int(max_calls_per_turn)
        self.sample: Optional[dict] = None
        self.ctx: Optional[ToolContext] = None
        self.turns = 0

    def reset(self, sample: dict, ctx: ToolContext) -> Observation:
        """Start a trajectory; `ctx.sample` is set to `sample` when it has none."""
        self.sample = sample
        self.ctx = ctx
        if ctx.sample is None:
            ctx.sample = sample
        self.turns = 0
        return Observation(info={"calls": [], "errors": []})

    def step(self, assistant_text: str) -> Observation:
        if self.ctx is None:
            raise RuntimeError("step() called before reset()")
        self.turns += 1
        calls = parse_tool_calls(assistant_text if isinstance(assistant_text, str) else "")
        if not calls:
            return self.answer(assistant_text if isinstance(assistant_text, str) else "")
        texts: list[str] = []
        images: list = []
        records: list[dict] = []
        for i, call in enumerate(calls):
            if i >= self.max_calls_per_turn:
                out = ToolOutput(text=f"Error: too many tool calls in one turn (at most {self.max_calls_per_turn}); "
                                      "this call was not run.", error="too_many_calls")
            else:
                out = self.run_call(call)
            self.ctx.returned.extend(out.images)
            texts.append(format_tool_response(out.text))
            images.extend(out.images)
            records.append(_record(call, out))
        errors = [r["error"] for r in records if r["error"] is not None]
        return Observation(text="\n".join(texts), images=images, info={"calls": records, "errors": errors})

    def schemas(self) -> list[dict]:
        """The function-calling schemas of this environment's tools (`tool_schemas(self.tools)`), for the prompt."""
        return tool_schemas(self.tools)

    def run_call(self, call: Union[ToolCall, ToolCallError]) -> ToolOutput:
        """Run one parsed call (never raises)."""
        return run_tool_call(call, self.ctx, timeout_s=self.timeout_s, allowed=self.tools)

    def answer(self, text: str) -> Observation:
        """The observation for a turn without tool calls: the trajectory ends (no reward by default)."""
        return Observation(done=True, info={"calls": [], "errors": []})


def _record(call: Union[ToolCall, ToolCallError], out: ToolOutput) -> dict:
    if isinstance(call, ToolCall):
        name, arguments = call.name, call.arguments
    else:
        name, arguments = None, None
    return {"name": name, "arguments": arguments, "error": out.error, "images": len(out.images), "text": out.text,
            "info": dict(out.info)}


def observation_content(obs: Observation) -> list[dict]:
    """`obs` as the content list of a chat message, media first then text, as mmrft's prompts are laid out:
    `[{"type": "image", "image": im}, …, {"type": "text", "text": obs.text}]` (no text item when empty)."""
    content: list[dict] = [{"type": "image", "image": im} for im in obs.images]
    if obs.text:
        content.append({"type": "text", "text": obs.text})
    return content
