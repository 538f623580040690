"""The data types a tool call passes through: what a tool sees (`ToolContext`), what it answers (`ToolOutput`), a
parsed call (`ToolCall`) or a call that could not be parsed (`ToolCallError`), and the error a tool raises to tell
the model what went wrong (`ToolError`).

Image indices. A trajectory's images are numbered in one sequence: the sample's original images first (0 … n-1),
then every image a tool returned, in the order they were returned (n, n+1, …). A tool that returns an image says
its index in its text ("this is image 2"), so the model can refer to it in a later call (`image_index=2`). Tools
never append to `ToolContext.returned` themselves: whoever runs the calls (`ToolEnvironment`, the rollout loop)
appends the returned images after each call, so the next call's indices count on.

This module imports nothing from mmrft.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from PIL import Image

__all__ = ["ERROR_KINDS", "ToolCall", "ToolCallError", "ToolContext", "ToolError", "ToolOutput", "normalise_output"]

#: The values of `ToolOutput.error`: a short, machine-friendly kind of failure (the text says the details).
ERROR_KINDS = ("unknown_tool", "bad_arguments", "tool_error", "timeout", "parse_error")


@dataclass
class ToolOutput:
    """What one tool call gives back to the model.

    Attributes:
        text: what the model reads; when the call failed, a short message naming the problem.
        images: images for the model to look at, in order (each becomes the next image index).
        error: `None` on success, else one of `ERROR_KINDS` (environments may add their own, e.g.
            "too_many_calls").
        info: facts about the call for rewards and metrics, not shown to the model (JSON-serialisable; e.g.
            `zoom_in`'s `{"image_index": 0, "pixel_box": [l, t, r, b]}`, the region it cropped).
    """

    text: str = ""
    images: list[Image.Image] = field(default_factory=list)
    error: Optional[str] = None
    info: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class ToolContext:
    """What a tool may look at besides its arguments: the trajectory's images and the model family's conventions.

    Attributes:
        images: the sample's original images, full resolution, in order.
        returned: images returned by earlier calls in this trajectory; image index k = len(images) + j is
            `returned[j]`.
        box_format: how the model writes boxes, one of `mmrft.rewards.grounding.BOX_FORMATS` ("pixel": pixels of
            the image; "norm1": fractions 0-1; "norm1000": a 0-1000 grid, Qwen2-VL; "model_pixel": pixels of the
            image as the model sees it after the processor's resize, Qwen2.5-VL).
        model_sizes: (w, h) of each image in `images + returned` as the model sees it (for "model_pixel"). `None`,
            or a list shorter than the images (a returned image the loop has not measured yet), means the image's
            own size for the missing entries.
        max_pixels, min_pixels: the processor's pixel budget; an image a tool returns is resized (aspect kept) to
            fit within it. `None`: no limit on that side.
        sample: the sample dict, for tools that need its metadata (e.g. `open_drawer`).
    """

    images: list[Image.Image] = field(default_factory=list)
    returned: list[Image.Image] = field(default_factory=list)
    box_format: str = "pixel"
    model_sizes: Optional[list[tuple[int, int]]] = None
    max_pixels: Optional[int] = None
    min_pixels: Optional[int] = None
    sample: Optional[dict] = None

    @property
    def num_images(self) -> int:
        """How many images the trajectory has so far (originals + returned)."""
        return len(self.images) + len(self.returned)

    def image(self, index: int) -> Image.Image:
        """Image `index` in the trajectory's numbering (originals first, then returned); `IndexError` outside."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < self.num_images:
            raise IndexError(index)
        n = len(self.images)
        return self.images[index] if index < n else self.returned[index - n]

    def model_size(self, index: int) -> tuple[int, int]:
        """(w, h) of image `index` as the model sees it: `model_sizes[index]` when known, else its own size."""
        if self.model_sizes is not None and 0 <= index < len(self.model_sizes) and self.model_sizes[index]:
            w, h = self.model_sizes[index]
            return int(w), int(h)
        return self.image(index).size


@dataclass
class ToolCall:
    """One parsed tool call: the tool's `name`, its `arguments` (a JSON object) and the `raw` text it came from
    (the whole `<tool_call>…</tool_call>` span)."""

    name: str
    arguments: dict = field(default_factory=dict)
    raw: str = ""


@dataclass
class ToolCallError:
    """A `<tool_call>` block that could not be turned into a `ToolCall`: its `raw` text and what is wrong with it
    (`message`, written for the model to read). Returned by `parse_tool_calls`, never raised."""

    raw: str
    message: str


class ToolError(Exception):
    """Raised by a tool to fail with a message the model should read (e.g. "the box is outside image 0").

    `kind` becomes `ToolOutput.error`: "bad_arguments" when the arguments are well-typed but make no sense for this
    input (a box outside the image, an image index that does not exist), else the default "tool_error".
    """

    def __init__(self, message: str, kind: str = "tool_error") -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


def _is_image(obj: Any) -> bool:
    return isinstance(obj, Image.Image)


def normalise_output(result: Any) -> ToolOutput:
    """A tool's return value as a `ToolOutput`: a `ToolOutput` as is, a `str` as its text, a PIL image as its one
    image, a list (or tuple) of those flattened in order (texts joined by newlines, images kept in order).
    Anything else (including `None`) raises `TypeError` naming the type, which the runner reports as a tool
    error."""
    if isinstance(result, ToolOutput):
        if not isinstance(result.text, str):
            raise TypeError(f"ToolOutput.text must be a str, got {type(result.text).__name__}")
        bad = [type(im).__name__ for im in result.images if not _is_image(im)]
        if bad:
            raise TypeError(f"ToolOutput.images must hold PIL images, got {', '.join(bad)}")
        return result
    if isinstance(result, str):
        return ToolOutput(text=result)
    if _is_image(result):
        return ToolOutput(images=[result])
    if isinstance(result, (list, tuple)):
        texts: list[str] = []
        images: list[Image.Image] = []
        for part in result:
            if isinstance(part, (list, tuple)):
                raise TypeError("a tool's list output must not nest lists")
            out = normalise_output(part)
            if out.error is not None:  # a failed part makes the whole output a failure
                return out
            if out.text:
                texts.append(out.text)
            images.extend(out.images)
        return ToolOutput(text="\n".join(texts), images=images)
    raise TypeError(f"a tool must return a ToolOutput, str, PIL image or a list of those, got {type(result).__name__}")
