"""``arithmetic``: combine the two numbers written in the image.

Difficulty levels:

0. two single digits 0-9, "What is the sum of the two numbers in the image?"
1. two two-digit numbers 10-99, sum or difference (larger minus smaller).
2. two single digits 1-9, product.

The numbers are drawn left and right (the first number is the left one) in
PIL's built-in font at a large size. Answer: a digit string. Reward: ``numeric``.
"""

from __future__ import annotations

import random

from PIL import ImageDraw

from .base import SyntheticTask, register_task
from .scene import blank_image, load_font, scale

QUESTIONS = {
    "sum": "What is the sum of the two numbers in the image?",
    "difference": "What is the difference between the two numbers in the image?",
    "product": "What is the product of the two numbers in the image?",
}
RATIONALES = {
    "sum": "add the two numbers",
    "difference": "subtract the smaller number from the larger",
    "product": "multiply the two numbers",
}
TEXT_RGB = (0, 0, 0)


@register_task("arithmetic")
class ArithmeticTask(SyntheticTask):
    name = "arithmetic"
    reward = "numeric"
    difficulties = range(3)

    def sample_scene(self, rng: random.Random, difficulty: int, image_size: int) -> dict:
        if difficulty == 0:
            a, b, op = rng.randint(0, 9), rng.randint(0, 9), "sum"
        elif difficulty == 1:
            a, b = rng.randint(10, 99), rng.randint(10, 99)
            op = rng.choice(("sum", "difference"))
        else:
            a, b, op = rng.randint(1, 9), rng.randint(1, 9), "product"
        font_size = scale(44 if difficulty != 1 else 34, image_size)
        font = load_font(font_size)
        draw = ImageDraw.Draw(blank_image(image_size))
        half = image_size // 2
        texts = []
        for slot, value in enumerate((a, b)):
            text = str(value)
            # anchor "mm": (x, y) is the middle of the text; jitter inside its half.
            l, t, r, bt = draw.textbbox((0, 0), text, font=font, anchor="mm")
            w, h = r - l, bt - t
            pad = scale(3, image_size)
            x_lo = slot * half + w // 2 + pad
            x_hi = (slot + 1) * half - (w - w // 2) - pad
            y_lo = h // 2 + pad
            y_hi = image_size - (h - h // 2) - pad
            x = rng.randint(x_lo, max(x_lo, x_hi))
            y = rng.randint(y_lo, max(y_lo, y_hi))
            bbox = list(draw.textbbox((x, y), text, font=font, anchor="mm"))
            texts.append(
                {
                    "text": text,
                    "value": value,
                    "anchor": [x, y],
                    "font_size": font_size,
                    "bbox": [int(v) for v in bbox],
                    "colour": "black",
                    "rgb": list(TEXT_RGB),
                }
            )
        return {"numbers": [a, b], "operation": op, "texts": texts}

    def render(self, scene: dict, image_size: int):
        img = blank_image(image_size)
        draw = ImageDraw.Draw(img)
        for t in scene["texts"]:
            font = load_font(t["font_size"])
            draw.text(tuple(t["anchor"]), t["text"], fill=tuple(t["rgb"]), font=font, anchor="mm")
        return img

    def prompt(self, scene: dict) -> str:
        return QUESTIONS[scene["operation"]]

    def rationale(self, scene: dict) -> str:
        return RATIONALES[scene["operation"]]

    def solve(self, scene: dict) -> str:
        a, b = scene["numbers"]
        op = scene["operation"]
        if op == "sum":
            return str(a + b)
        if op == "difference":
            return str(abs(a - b))
        if op == "product":
            return str(a * b)
        raise ValueError(f"unknown operation {op!r}")
