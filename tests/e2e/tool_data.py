"""Tool-use SFT data for the end-to-end tool tests: counting scenes whose supervised trajectory first calls a tool on
the image, reads the tool's real answer (text and image, produced by running the tool), then answers."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from mmrft.data.sources import load_samples
from mmrft.tools import ToolCall, ToolContext, run_tool_call, tool_schemas


def center_crop(ctx: ToolContext, image_index: int = 0) -> Image.Image:
    """Return the central half of an image, enlarged.

    Args:
        ctx: the trajectory's images
        image_index: which image to crop
    """
    image = ctx.image(image_index)
    w, h = image.size
    return image.crop((w // 4, h // 4, 3 * w // 4, 3 * h // 4)).resize((w, h))


USER_TOOL = "tests.e2e.tool_data:center_crop"


def write_tool_sft_data(src: Path, out: Path, box_format: str, max_pixels: int, min_pixels: int) -> Path:
    """`src`'s scenes with a supervised trajectory each: even items call `zoom_in` on the whole image (in
    `box_format`), odd ones the user tool `center_crop`; the tool turn is what the tool really answers."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "crops").mkdir(exist_ok=True)
    rows = []
    for i, s in enumerate(load_samples(src)):
        image = Image.open(s.images[0]).convert("RGB")
        if i % 2 == 0:
            box = [0, 0, 1000, 1000] if box_format == "norm1000" else [0, 0, image.width, image.height]
            call = ToolCall("zoom_in", {"bbox_2d": box}, "")
        else:
            call = ToolCall(USER_TOOL, {"image_index": 0}, "")
        ctx = ToolContext(images=[image], returned=[], box_format=box_format, max_pixels=max_pixels,
                          min_pixels=min_pixels)
        answer = run_tool_call(call, ctx, allowed=["zoom_in", USER_TOOL])
        assert answer.error is None, answer.text
        crop = f"crops/{s.id}.png"
        answer.images[0].save(out / crop)
        row = s.to_row(out)
        row["trajectory"] = [
            {"role": "assistant",
             "content": "<think>look closer</think><tool_call>" + json.dumps({"name": call.name, "arguments":
                                                                                call.arguments}) + "</tool_call>"},
            {"role": "tool", "content": f"<tool_response>\n{answer.text}\n</tool_response>", "images": [crop]},
            {"role": "assistant", "content": f"<think>{s.metadata['rationale']}</think><answer>{s.answer}</answer>"},
        ]
        rows.append(row)
    (out / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def schemas() -> list[dict]:
    return tool_schemas(["zoom_in", USER_TOOL])
