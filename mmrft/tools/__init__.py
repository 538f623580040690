"""Tools for multi-turn RL ("thinking with images"): the model writes a tool call, gets text or new images back,
and continues.

The pieces, one module each:

| module | what |
|---|---|
| `base` | `ToolContext` (what a tool sees), `ToolOutput` (what it answers), `ToolCall` / `ToolCallError`, `ToolError` |
| `registry` | `TOOLS`, `register_tool`, `tool_spec`, `tool_schemas` (the function-calling format for chat templates) |
| `schema` | the argument validator and schemas derived from signatures |
| `parsing` | `parse_tool_calls`: Qwen's `<tool_call>{json}</tool_call>` blocks in an assistant turn |
| `runner` | `run_tool_call`: one call, never raising, time-limited |
| `images` | fitting returned images into the processor's pixel budget; boxes to pixels |
| `vision`, `calculator` | built-in tools `zoom_in`, `rotate`, `calculator` |
| `prompting` | the tool-response wrapper (the tool list for templates that ignore `tools=`: `mmrft.data.prompts`) |
| `environment` | `Observation`, the `Environment` protocol, `ENVIRONMENTS`, `ToolEnvironment` |
| `drawers` | the synthetic `drawers` environment, its `open_drawer` tool and item generator |

Layer: like `rewards` and `data`, this package uses only `algorithms`, `data`, `rewards`, `registry`, `errors` and
`atomic` (tests/test_layers.py), so the rollout and training code above it can use it.
"""

from mmrft.tools.base import ERROR_KINDS, ToolCall, ToolCallError, ToolContext, ToolError, ToolOutput
from mmrft.tools.registry import TOOLS, register_tool, tool_schemas, tool_spec
from mmrft.tools.parsing import parse_tool_calls
from mmrft.tools.runner import run_tool_call
from mmrft.tools.images import fit_pixels
from mmrft.tools.prompting import format_tool_response
from mmrft.tools.environment import (
    ENVIRONMENTS,
    Environment,
    Observation,
    ToolEnvironment,
    make_environment,
    observation_content,
    register_environment,
)

__all__ = [
    "ENVIRONMENTS",
    "ERROR_KINDS",
    "Environment",
    "Observation",
    "TOOLS",
    "ToolCall",
    "ToolCallError",
    "ToolContext",
    "ToolEnvironment",
    "ToolError",
    "ToolOutput",
    "fit_pixels",
    "format_tool_response",
    "make_environment",
    "observation_content",
    "parse_tool_calls",
    "register_environment",
    "register_tool",
    "run_tool_call",
    "tool_schemas",
    "tool_spec",
]
