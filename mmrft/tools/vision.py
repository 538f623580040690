"""Built-in image tools: `zoom_in` (crop a box, DeepEyes' name and argument layout) and `rotate`.

Both take an `image_index` in the trajectory's numbering (the sample's images first, then every image a tool
returned, see `mmrft.tools.base`), return one new image fitted into the processor's pixel budget, and say the new
image's index in their text so the model can refer to it in a later call.
"""

from __future__ import annotations

from PIL import Image

from mmrft.tools.base import ToolContext, ToolError, ToolOutput
from mmrft.tools.images import box_to_pixel_bounds, fit_pixels
from mmrft.tools.registry import register_tool

__all__ = ["rotate", "zoom_in"]

_IMAGE_INDEX = {
    "type": "integer",
    "minimum": 0,
    "description": "Which image: 0 is the first image of the question; images returned by tools continue the "
                   "numbering.",
}


def _image(ctx: ToolContext, index: int) -> Image.Image:
    if not 0 <= index < ctx.num_images:
        have = ctx.num_images
        valid = f"0-{have - 1}" if have > 1 else "0" if have == 1 else "none"
        raise ToolError(f"image_index {index} does not exist: there {_count_images(have)} (valid indices: {valid})",
                        kind="bad_arguments")
    return ctx.image(index)


def _count_images(n: int) -> str:
    return "is 1 image" if n == 1 else f"are {n} images"


@register_tool(
    "zoom_in",
    description="Zoom in on a region of an image: crop the box bbox_2d and return it as a new image, enlarged, "
                "to look at small details.",
    parameters={
        "type": "object",
        "properties": {
            "bbox_2d": {
                "type": "array",
                "items": {"type": "number"},
                "minItems": 4,
                "maxItems": 4,
                "description": "The region to zoom in on, [x1, y1, x2, y2]: top-left and bottom-right corners, in "
                               "the same coordinates you use for boxes.",
            },
            "image_index": _IMAGE_INDEX,
            "label": {"type": "string", "description": "Optional: what is in the region."},
        },
        "required": ["bbox_2d"],
    },
)
def zoom_in(ctx: ToolContext, bbox_2d: list, image_index: int = 0, label: str = "") -> ToolOutput:
    """Crop `bbox_2d` (in `ctx.box_format`) out of image `image_index`.

    The box is converted to pixels of that image, clipped to it, rounded outwards to whole pixels and, when a side
    is shorter than `MIN_CROP` (28) pixels, enlarged to 28 around its centre (see
    `mmrft.tools.images.box_to_pixel_bounds`). A box with no area or entirely outside the image is a
    `bad_arguments` error. The crop is resized to fit `ctx.max_pixels` / `ctx.min_pixels` (aspect kept; as is
    without limits). The text names the pixel box actually cropped and the new image's index.
    """
    image = _image(ctx, image_index)
    left, top, right, bottom = box_to_pixel_bounds(bbox_2d, ctx, image_index)
    crop = fit_pixels(image.crop((left, top, right, bottom)), ctx.max_pixels, ctx.min_pixels)
    what = f" ({label})" if label else ""
    return ToolOutput(
        text=f"Zoomed in on image {image_index} at [{left}, {top}, {right}, {bottom}] (pixels){what}; "
             f"this is image {ctx.num_images}.",
        images=[crop],
        info={"image_index": int(image_index), "pixel_box": [left, top, right, bottom]},
    )


@register_tool(
    "rotate",
    description="Rotate an image counter-clockwise by an angle in degrees (e.g. 90, 180, 270) and return the "
                "rotated image as a new image.",
    parameters={
        "type": "object",
        "properties": {
            "angle": {"type": "number", "description": "Degrees counter-clockwise; 90, 180 and 270 are exact, other "
                                                       "angles enlarge the canvas to keep the corners."},
            "image_index": _IMAGE_INDEX,
        },
        "required": ["angle"],
    },
)
def rotate(ctx: ToolContext, angle: float, image_index: int = 0) -> ToolOutput:
    """Rotate image `image_index` by `angle` degrees counter-clockwise (PIL's convention), the canvas expanded to
    hold the whole result. Multiples of 90 are lossless transposes; other angles are resampled bicubically with the
    new corners filled white (black for non-RGB modes). Fitted into the pixel budget like every returned image."""
    image = _image(ctx, image_index)
    turn = float(angle) % 360.0
    transposes = {90.0: Image.Transpose.ROTATE_90, 180.0: Image.Transpose.ROTATE_180,
                  270.0: Image.Transpose.ROTATE_270}
    if turn == 0.0:
        rotated = image.copy()
    elif turn in transposes:
        rotated = image.transpose(transposes[turn])
    else:
        fill = (255, 255, 255) if image.mode == "RGB" else None
        rotated = image.rotate(turn, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=fill)
    rotated = fit_pixels(rotated, ctx.max_pixels, ctx.min_pixels)
    return ToolOutput(text=f"Rotated image {image_index} by {_deg(angle)} degrees counter-clockwise; "
                           f"this is image {ctx.num_images}.", images=[rotated])


def _deg(angle: float) -> str:
    return str(int(angle)) if float(angle).is_integer() else f"{float(angle):g}"

