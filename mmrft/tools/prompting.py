"""The text around a tool's answer: the `<tool_response>` wrapper of Qwen's templates. (How the tools are listed in a
prompt whose chat template ignores `tools=` is the data layer's: `mmrft.data.prompts.tools_system_text` and
`template_renders_tools`, used by `mmrft.data.collate.render_prompt`.)

Qwen2.5 / Qwen3 chat templates wrap each `tool` message in `<tool_response>` tags inside a user turn. The Qwen2-VL and
Qwen2.5-VL templates (and the tiny Qwen2-VL model's, which is the real Qwen2-VL template) render a `tool` message as
a bare `<|im_start|>tool` turn, so `ToolEnvironment` wraps each call's answer itself.
"""

from __future__ import annotations

__all__ = ["format_tool_response"]


def format_tool_response(text: str) -> str:
    """One tool call's text wrapped as Qwen's templates wrap a tool message:
    `<tool_response>\n…\n</tool_response>`."""
    return f"<tool_response>\n{text}\n</tool_response>"
