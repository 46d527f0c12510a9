"""A camera for the tests of the stages that only need pictures of the right size: every
picture is the N/A image stamped with its moment, as the service's own camera answers when none
is configured, without reading the settings."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from doormail.camera import Pictures, spread
from doormail.camera.na import na_image


class NoCamera:
    """A `SnapshotSource` whose every snapshot is the N/A image, stamped with its moment."""

    async def snapshots(
        self, start: float, end: float, count: int, width: int, height: int
    ) -> Pictures:
        moments = spread(start, end, count)
        images = [
            await asyncio.to_thread(na_image, width, height, datetime.fromtimestamp(t, UTC))
            for t in moments
        ]
        return Pictures(images)
