"""User-style tools and an environment for the tools tests, referenced as "tests.tools.user_tools:<name>".

None of them is registered: they reach the registries only by their `module:function` names, so their schemas are
derived from their signatures and docstrings.
"""

from __future__ import annotations

import time

from PIL import Image

from mmrft.tools import Observation, ToolContext


def scale_image(ctx: ToolContext, factor: float, image_index: int = 0) -> Image.Image:
    """Scale an image by a factor.

    Args:
        ctx: the trajectory's images (not part of the schema)
        factor: how much larger to make the image
        image_index: which image to scale
    """
    image = ctx.image(image_index)
    return image.resize((max(1, round(image.width * factor)), max(1, round(image.height * factor))))


def undocumented(ctx, x, y=2, *args, **kwargs):
    return f"x={x} y={y} extra={sorted(kwargs)}"


def sleepy(ctx: ToolContext, seconds: float) -> str:
    """Sleep, then say so.

    Args:
        ctx: the context
        seconds: how long to sleep
    """
    time.sleep(seconds)
    return f"slept {seconds}"


def spin(ctx: ToolContext) -> str:
    """Loop forever in pure Python (only a signal stops it)."""
    while True:
        pass


def never_named_by_the_config(ctx: ToolContext) -> str:
    """Must not be imported from a model-written name."""
    return "imported"


class EchoEnvironment:
    """A user environment: echoes each turn back until the model says "bye"."""

    def __init__(self, prefix: str = "echo: ") -> None:
        self.prefix = prefix

    def reset(self, sample: dict, ctx: ToolContext) -> Observation:
        return Observation(text=self.prefix + sample.get("prompt", ""))

    def step(self, assistant_text: str) -> Observation:
        return Observation(text=self.prefix + assistant_text, done="bye" in assistant_text)
