"""zoom_in in every box format with hand-computed crops, read back from a four-coloured test image; small-box
enlargement, clipping, errors; fitting into the pixel budget; rotate."""

import pytest
from PIL import Image

from mmrft.tools import ToolCall, ToolContext, fit_pixels, run_tool_call
from mmrft.tools.images import MIN_CROP, box_to_pixel_bounds

RED, GREEN, BLUE, YELLOW, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 255, 255)
W, H = 400, 200  # quadrants: top-left red, top-right green, bottom-left blue, bottom-right yellow


def quadrants(w=W, h=H) -> Image.Image:
    img = Image.new("RGB", (w, h))
    img.paste(RED, (0, 0, w // 2, h // 2))
    img.paste(GREEN, (w // 2, 0, w, h // 2))
    img.paste(BLUE, (0, h // 2, w // 2, h))
    img.paste(YELLOW, (w // 2, h // 2, w, h))
    return img


def zoom(ctx, **arguments):
    return run_tool_call(ToolCall("zoom_in", arguments), ctx)


def colours(img):
    return {c for _, c in img.getcolors(img.width * img.height)}


# (box_format, model_sizes, box the model writes, expected pixel bounds, colours of the crop)
CASES = [
    ("pixel", None, [210, 10, 390, 90], (210, 10, 390, 90), {GREEN}),
    ("pixel", None, [100, 50, 300, 150], (100, 50, 300, 150), {RED, GREEN, BLUE, YELLOW}),
    ("norm1", None, [0.5, 0.5, 1.0, 1.0], (200, 100, 400, 200), {YELLOW}),
    ("norm1", None, [0.0, 0.0, 0.25, 0.25], (0, 0, 100, 50), {RED}),
    ("norm1000", None, [0, 500, 500, 1000], (0, 100, 200, 200), {BLUE}),
    ("norm1000", None, [10, 10, 255, 505], (4, 2, 102, 101), {RED, BLUE}),  # y2 = 101.0: one blue row
    ("model_pixel", [(200, 100)], [0, 0, 100, 50], (0, 0, 200, 100), {RED}),  # model sees half size: x2
    ("model_pixel", [(800, 400)], [420, 220, 780, 380], (210, 110, 390, 190), {YELLOW}),  # model sees 2x
    ("pixel", None, [10.4, 20.6, 50.2, 60.9], (10, 20, 51, 61), {RED}),  # rounded outwards
]


@pytest.mark.parametrize("box_format, model_sizes, box, bounds, expected", CASES)
def test_zoom_in_crops_the_right_region(box_format, model_sizes, box, bounds, expected):
    ctx = ToolContext(images=[quadrants()], box_format=box_format, model_sizes=model_sizes)
    assert box_to_pixel_bounds(box, ctx, 0) == bounds
    out = zoom(ctx, bbox_2d=box)
    assert out.error is None, out.text
    [crop] = out.images
    assert crop.size == (bounds[2] - bounds[0], bounds[3] - bounds[1])
    assert crop.tobytes() == quadrants().crop(bounds).tobytes()
    assert colours(crop) == expected
    left, top, right, bottom = bounds
    assert out.text == f"Zoomed in on image 0 at [{left}, {top}, {right}, {bottom}] (pixels); this is image 1."


@pytest.mark.parametrize("box, bounds", [
    ([100, 50, 102, 52], (87, 37, 115, 65)),  # 2x2 around (101, 51) -> 28x28 around it
    ([0, 0, 2, 2], (0, 0, MIN_CROP, MIN_CROP)),  # at the top-left corner: shifted inside
    ([398, 198, 400, 200], (W - MIN_CROP, H - MIN_CROP, W, H)),  # bottom-right corner
    ([50, 10, 150, 12], (50, 0, 150, 28)),  # only the short side grows
    ([-10, 95, 2, 97], (0, 82, 28, 110)),  # clipped first, then enlarged
])
def test_tiny_boxes_are_enlarged_to_28_pixels_around_their_centre(box, bounds):
    ctx = ToolContext(images=[quadrants()])
    assert box_to_pixel_bounds(box, ctx, 0) == bounds
    assert zoom(ctx, bbox_2d=box).images[0].size == (bounds[2] - bounds[0], bounds[3] - bounds[1])


def test_an_image_smaller_than_28_pixels_gives_its_whole_side():
    ctx = ToolContext(images=[Image.new("RGB", (20, 100))])
    assert box_to_pixel_bounds([5, 10, 6, 11], ctx, 0) == (0, 0, 20, 28)


@pytest.mark.parametrize("box, bounds", [
    ([-50, -50, 100, 60], (0, 0, 100, 60)),
    ([300, 150, 900, 900], (300, 150, 400, 200)),
    ([-1e9, -1e9, 1e9, 1e9], (0, 0, W, H)),
])
def test_boxes_are_clipped_to_the_image(box, bounds):
    ctx = ToolContext(images=[quadrants()])
    assert box_to_pixel_bounds(box, ctx, 0) == bounds


@pytest.mark.parametrize("box_format, box, fragment", [
    ("pixel", [500, 0, 600, 50], "the box [500, 0, 600, 50] is entirely outside image 0 (it is 400x200 pixels)"),
    ("pixel", [-30, -30, -1, -1], "entirely outside image 0"),
    ("norm1000", [1001, 0, 1200, 10], "entirely outside image 0 (coordinates run from 0 to 1000)"),
    ("norm1", [1.5, 0, 2, 1], "(coordinates run from 0 to 1)"),
    ("pixel", [10, 10, 10, 50], "has no area: it must be [x1, y1, x2, y2] with x2 > x1 and y2 > y1"),
    ("pixel", [50, 10, 10, 50], "has no area"),
    ("norm1", [0.5, 0.5, 0.5, 0.6], "has no area"),
])
def test_bad_boxes_are_errors_the_model_can_read(box_format, box, fragment):
    out = zoom(ToolContext(images=[quadrants()], box_format=box_format), bbox_2d=box)
    assert out.error == "bad_arguments" and out.images == []
    assert out.text.startswith("Error: zoom_in: ") and fragment in out.text, out.text


def test_image_index_out_of_range():
    out = zoom(ToolContext(images=[quadrants()]), bbox_2d=[0, 0, 50, 50], image_index=1)
    assert (out.error, out.text) == ("bad_arguments", "Error: zoom_in: image_index 1 does not exist: there is 1 "
                                                      "image (valid indices: 0)")


def test_zoom_into_a_returned_image_and_the_label():
    first = quadrants()
    returned = quadrants(200, 100)
    ctx = ToolContext(images=[first], returned=[returned], box_format="norm1000")
    out = zoom(ctx, bbox_2d=[500, 0, 1000, 500], image_index=1, label="the green corner")
    assert out.error is None
    assert out.images[0].size == (100, 50) and colours(out.images[0]) == {GREEN}
    assert out.text == ("Zoomed in on image 1 at [100, 0, 200, 50] (pixels) (the green corner); "
                        "this is image 2.")


def test_model_pixel_size_of_a_returned_image_defaults_to_its_own_size():
    ctx = ToolContext(images=[quadrants()], returned=[quadrants(100, 50)], box_format="model_pixel",
                      model_sizes=[(200, 100)])  # the loop has not measured the returned image
    assert box_to_pixel_bounds([0, 0, 50, 40], ctx, 0) == (0, 0, 100, 80)  # original: model sees half
    assert box_to_pixel_bounds([0, 0, 50, 40], ctx, 1) == (0, 0, 50, 40)  # returned: its own size


def test_crops_are_fitted_into_max_and_min_pixels():
    ctx = ToolContext(images=[quadrants()], max_pixels=5000)
    out = zoom(ctx, bbox_2d=[0, 0, 200, 100])  # 20000 px -> 100 x 50
    assert out.images[0].size == (100, 50)
    assert out.images[0].getpixel((50, 25)) == RED
    ctx = ToolContext(images=[quadrants()], min_pixels=3200)
    out = zoom(ctx, bbox_2d=[200, 100, 240, 120])  # 40 x 28 (enlarged) = 1120 px -> at least 3200
    w, h = out.images[0].size
    assert w * h >= 3200 and abs(w / h - 40 / 28) < 0.05
    assert out.images[0].getpixel((w // 2, h // 2)) == YELLOW
    ctx = ToolContext(images=[quadrants()], max_pixels=100000, min_pixels=100)
    assert zoom(ctx, bbox_2d=[0, 0, 200, 100]).images[0].size == (200, 100)  # already fits: as is


@pytest.mark.parametrize("size, max_pixels, min_pixels, expected", [
    ((400, 200), None, None, (400, 200)),
    ((400, 200), 20000, None, (200, 100)),
    ((400, 200), 80000, None, (400, 200)),
    ((300, 100), 10000, None, (173, 57)),
    ((40, 20), None, 3200, (80, 40)),
    ((40, 20), 3000, 3200, (77, 38)),  # min above max: max wins
    ((10000, 1), 100, None, (100, 1)),  # sides stay >= 1
])
def test_fit_pixels(size, max_pixels, min_pixels, expected):
    out = fit_pixels(Image.new("RGB", size), max_pixels, min_pixels)
    assert out.size == expected
    if max_pixels:
        assert out.size[0] * out.size[1] <= max_pixels


# ----------------------------------------------------------------------------------------------- rotate


def halves() -> Image.Image:
    img = Image.new("RGB", (40, 20), RED)
    img.paste(BLUE, (20, 0, 40, 20))  # left red, right blue
    return img


def rotate(ctx, **arguments):
    return run_tool_call(ToolCall("rotate", arguments), ctx)


@pytest.mark.parametrize("angle, size, top_left, bottom_right", [
    (90, (20, 40), BLUE, RED),  # counter-clockwise: the right edge goes to the top
    (180, (40, 20), BLUE, RED),
    (270, (20, 40), RED, BLUE),
    (-90, (20, 40), RED, BLUE),
    (450, (20, 40), BLUE, RED),
    (0, (40, 20), RED, BLUE),
])
def test_rotate_right_angles_exactly(angle, size, top_left, bottom_right):
    out = rotate(ToolContext(images=[halves()]), angle=angle)
    assert out.error is None
    [img] = out.images
    assert img.size == size
    assert img.getpixel((0, 0)) == top_left and img.getpixel((size[0] - 1, size[1] - 1)) == bottom_right
    assert out.text == f"Rotated image 0 by {angle} degrees counter-clockwise; this is image 1."


def test_rotate_other_angles_expand_the_canvas():
    out = rotate(ToolContext(images=[halves()]), angle=45.5)
    [img] = out.images
    assert img.width > 40 and img.height > 20
    assert img.getpixel((0, 0)) == WHITE  # new corners are white
    assert "by 45.5 degrees" in out.text


def test_rotate_errors():
    ctx = ToolContext(images=[halves()])
    assert rotate(ctx, angle="90").error == "bad_arguments"
    assert rotate(ctx, angle=True).error == "bad_arguments"
    assert rotate(ctx, angle=90, image_index=3).error == "bad_arguments"
    assert rotate(ctx).text == "Error: bad arguments for rotate: missing required argument 'angle'"


def test_rotate_a_returned_image_names_the_next_index():
    ctx = ToolContext(images=[halves()], returned=[halves(), halves()])
    out = rotate(ctx, angle=180, image_index=2)
    assert out.text == "Rotated image 2 by 180 degrees counter-clockwise; this is image 3."
