"""Snapshot sources and the time-indexed frame buffer. The rest of doormail asks one question,
`SnapshotSource.snapshots(start, end, count, width, height)`, and gets `Pictures`; without a
camera the answer is the N/A image. `service` follows the settings and captures, `open` builds
the source that `camera.*` describes, `source` says what every source is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Pictures:
    """JPEG images for one mail, and notes for its body (e.g. that the camera did not answer)."""

    images: list[bytes]
    notes: list[str] = field(default_factory=list)


class SnapshotSource(Protocol):
    """Where the pictures of a mail come from."""

    async def snapshots(
        self, start: float, end: float, count: int, width: int, height: int
    ) -> Pictures:
        """`count` JPEGs of `width`x`height` for the span `start`..`end` (UNIX seconds)."""
        ...


def spread(start: float, end: float, count: int) -> list[float]:
    """`count` moments spread evenly from `start` to `end` (both included when count > 1)."""
    if count <= 1 or end <= start:
        return [start] * max(count, 0)
    step = (end - start) / (count - 1)
    return [start + step * i for i in range(count)]
