"""The "N/A" image: what a mail carries when there is no camera, or the camera did not answer."""

from __future__ import annotations

import io
from datetime import datetime

from PIL import Image, ImageDraw, ImageFont


def na_image(width: int = 640, height: int = 480, when: datetime | None = None) -> bytes:
    """A JPEG of `width`x`height` that reads "N/A" (and the time, when given)."""
    image = Image.new("RGB", (width, height), (48, 52, 58))
    draw = ImageDraw.Draw(image)
    big = ImageFont.load_default(size=max(12, height // 4))
    _centered(draw, "N/A", big, width, height // 2 - (height // 16 if when else 0))
    if when is not None:
        small = ImageFont.load_default(size=max(8, height // 18))
        stamp = when.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
        _centered(draw, stamp, small, width, height // 2 + height // 6)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def _centered(
    draw: ImageDraw.ImageDraw,
    text: str,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    width: int,
    middle_y: int,
) -> None:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x = (width - (right - left)) // 2 - left
    y = middle_y - (bottom - top) // 2 - top
    draw.text((x, y), text, fill=(235, 235, 235), font=font)
