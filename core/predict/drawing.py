"""A picture of an image with its detections: a box per detection, class name and score."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

from core.predict.detections import Detections
from core.predict.metadata import ModelMeta

PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
)
"""Distinct colours, one per class (cycled)."""


def colour_of(label: int) -> tuple[int, int, int]:
    """The colour of a label 1..K."""
    return PALETTE[(label - 1) % len(PALETTE)]


def draw_detections(image: Image.Image, found: Detections, meta: ModelMeta) -> Image.Image:
    """A copy of the image with every detection's box and `name score` label drawn on it."""
    canvas = image.convert("RGB").copy()
    draw = ImageDraw.Draw(canvas)
    side = min(canvas.size)
    width = max(1, round(side / 300))
    font = ImageFont.load_default(size=max(10, round(side / 60)))
    # Lowest score first, so the best boxes are drawn on top.
    order = found.scores.argsort(kind="stable")
    for index in order.tolist():
        x1, y1, x2, y2 = found.boxes[index].tolist()
        label = int(found.labels[index])
        colour = colour_of(label)
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=width)
        text = f"{meta.category(label).name} {float(found.scores[index]):.2f}"
        left, top, right, bottom = draw.textbbox((x1, y1), text, font=font)
        height = bottom - top
        y = y1 - height - 2 if y1 - height - 2 >= 0 else y1
        box = (x1, y, x1 + (right - left) + 4, y + height + 2)
        draw.rectangle(box, fill=colour)
        draw.text((x1 + 2, y), text, fill=(0, 0, 0), font=font)
    return canvas
