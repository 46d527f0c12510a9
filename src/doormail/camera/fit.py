"""Keeping a message under `smtp.max_message_bytes`: snapshots that would not fit are scaled
down and re-encoded smaller; when even that is not enough the last ones are left out. Either
way a note says so, for the message body."""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image

from doormail.camera.scale import BadFrame, encode_jpeg, open_jpeg

# The MIME headers of one attachment part (Content-Type, -Disposition, -Transfer-Encoding and
# the boundary line), generously counted.
PART_OVERHEAD = 256
# Below this width a snapshot shows nothing useful; past it, dropping beats shrinking.
MIN_WIDTH = 160
SMALLER_QUALITY = 70
_ROUNDS = 4


def attachment_size(image: bytes) -> int:
    """The bytes one JPEG takes in the message: base64 in 76-character lines, and its headers."""
    encoded = 4 * math.ceil(len(image) / 3)
    return encoded + 2 * math.ceil(encoded / 76) + PART_OVERHEAD


def fit_attachments(images: Sequence[bytes], budget_bytes: int) -> tuple[list[bytes], list[str]]:
    """`images` made to take at most `budget_bytes` of the message (as counted by
    `attachment_size`, so base64 and part headers included), and notes for the body saying
    what was done. CPU work: call it from a thread when on an event loop."""
    if _total(images) <= budget_bytes:
        return list(images), []
    notes: list[str] = []
    kept, size = _scaled_down(images, budget_bytes)
    if size is not None:
        notes.append(
            f"The snapshots were reduced to {size[0]}x{size[1]} "
            "to keep the message within its size limit."
        )
    while kept and _total(kept) > budget_bytes:
        kept.pop()
    if left_out := len(images) - len(kept):
        noun = "snapshot was" if left_out == 1 else "snapshots were"
        notes.append(
            f"{left_out} of {len(images)} {noun} left out to keep the message within its size limit."
        )
    return kept, notes


def _total(images: Sequence[bytes]) -> int:
    return sum(attachment_size(image) for image in images)


def _scaled_down(
    images: Sequence[bytes], budget: int
) -> tuple[list[bytes], tuple[int, int] | None]:
    """Smaller versions of `images`, shrunk in a few rounds until they fit or reach MIN_WIDTH,
    and their new size (None when they could not be shrunk)."""
    try:
        pictures = [open_jpeg(image) for image in images]
    except BadFrame:
        return list(images), None
    width, height = pictures[0].size
    smallest = min(1.0, MIN_WIDTH / width)
    factor, best, best_size = 1.0, list(images), None
    for _ in range(_ROUNDS):
        # JPEG size grows about with the pixel count, hence the square root
        step = min(0.9, max(0.3, 0.9 * math.sqrt(budget / max(_total(best), 1))))
        if max(factor * step, smallest) >= factor:
            break
        factor = max(factor * step, smallest)
        best = [_shrunk(picture, factor) for picture in pictures]
        best_size = (max(1, round(width * factor)), max(1, round(height * factor)))
        if _total(best) <= budget:
            break
    return best, best_size


def _shrunk(picture: Image.Image, factor: float) -> bytes:
    size = (max(1, round(picture.width * factor)), max(1, round(picture.height * factor)))
    return encode_jpeg(picture.resize(size, Image.Resampling.BICUBIC), SMALLER_QUALITY)
