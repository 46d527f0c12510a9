"""Snapshot sources and the time-indexed frame buffer. The rest of doormail asks one question:
`snapshots(start, end, count, width, height)`; without a camera the answer is the N/A image."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(frozen=True)
class Snapshots:
    """JPEG images for one mail, and notes for its body (e.g. that the camera did not answer)."""

    images: list[bytes]
    notes: list[str] = field(default_factory=list)


class NoCamera:
    """`camera.source = none`: every snapshot is the N/A image, stamped with its moment."""

    async def snapshots(
        self, start: float, end: float, count: int, width: int, height: int
    ) -> Snapshots:
        from doormail.camera.na import na_image  # Pillow: loaded with the first picture

        moments = spread(start, end, count)
        images = [
            await asyncio.to_thread(na_image, width, height, datetime.fromtimestamp(t, UTC))
            for t in moments
        ]
        return Snapshots(images)


def spread(start: float, end: float, count: int) -> list[float]:
    """`count` moments spread evenly from `start` to `end` (both included when count > 1)."""
    if count <= 1 or end <= start:
        return [start] * max(count, 0)
    step = (end - start) / (count - 1)
    return [start + step * i for i in range(count)]
