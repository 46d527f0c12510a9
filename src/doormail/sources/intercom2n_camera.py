"""A 2N intercom's own camera as the snapshot source of its device's mails (SPEC 11): pictures
from `/api/camera/snapshot` with `time` reaching back into the 30 s the intercom keeps. A call
that rings longer than that has pictures taken while it rings (one every RING_EVERY seconds
once RING_KEEP_AFTER have passed), so its early moments are still covered. Idle, it costs
nothing."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from datetime import UTC, datetime

import httpx

from doormail.camera import Pictures, spread
from doormail.devices.model import Intercom2N
from doormail.sources.intercom2n_api import IntercomError, call, client_for, picture

log = logging.getLogger("doormail.sources.2n")

HISTORY = 30  # seconds of pictures the intercom keeps (`time` within <-30, 0>)
RING_KEEP_AFTER = 20.0
RING_EVERY = 5.0
RING_MAX = 600.0
# Asked when the intercom's own list (`/api/camera/caps` jpegResolution) cannot be had.
FALLBACK_SIZE = (640, 480)
CAMERA_DID_NOT_ANSWER = "The camera did not answer."


class IntercomCamera:
    """Snapshots from one intercom; `client` and `offset` (its clock minus ours) are set by the
    device's follower while it runs."""

    def __init__(self, source: Intercom2N) -> None:
        self.source = source
        self.client: httpx.AsyncClient | None = None
        self.offset = 0.0
        self._kept: list[tuple[float, bytes]] = []
        self._sizes: list[tuple[int, int]] | None = None
        self._ringing: asyncio.Task[None] | None = None

    def ringing(self, at: float) -> None:
        """A call started ringing at `at` (the intercom's time): keep pictures while it rings."""
        self.ended()
        self._kept = []
        self._ringing = asyncio.create_task(self._keep_while_ringing(at), name="2n-ringing")

    def ended(self) -> None:
        if self._ringing is not None:
            self._ringing.cancel()
            self._ringing = None

    async def _keep_while_ringing(self, at: float) -> None:
        await asyncio.sleep(max(0.0, at + RING_KEEP_AFTER - self._now()))
        while self._now() < at + RING_MAX:
            moment = self._now()
            with contextlib.suppress(IntercomError):
                jpeg = await self._fetch(0, *FALLBACK_SIZE)
                self._kept.append((moment, jpeg))
            await asyncio.sleep(RING_EVERY)

    async def snapshots(
        self, start: float, end: float, count: int, width: int, height: int
    ) -> Pictures:
        """`count` pictures spread over `start`..`end` (UNIX seconds of the intercom's clock);
        a moment the intercom no longer keeps takes the nearest picture kept while ringing; a
        picture that cannot be had is the N/A image, and the mail says so."""
        if count <= 0:
            return Pictures([])
        moments = spread(start, max(start, end), count)
        images: list[bytes] = []
        missing = False
        for moment in moments:
            jpeg = await self._at(moment, width, height)
            if jpeg is None:
                missing = True
                jpeg = await asyncio.to_thread(_na, width, height, moment)
            images.append(jpeg)
        return Pictures(images, [CAMERA_DID_NOT_ANSWER] if missing else [])

    async def _at(self, moment: float, width: int, height: int) -> bytes | None:
        back = round(moment - self._now())
        try:
            if back >= -HISTORY:
                return await self._fetch(min(back, 0), width, height)
        except IntercomError as error:
            log.warning("2N camera %s: %s", self.source.url, error)
            return None
        if not self._kept:
            return None
        moments = [kept[0] for kept in self._kept]
        index = min(bisect.bisect_left(moments, moment), len(moments) - 1)
        if index > 0 and moment - moments[index - 1] < moments[index] - moment:
            index -= 1
        return await asyncio.to_thread(_fit, self._kept[index][1], width, height)

    async def _fetch(self, back: int, width: int, height: int) -> bytes:
        if self.client is not None:
            return await self._fetch_with(self.client, back, width, height)
        async with client_for(self.source, timeout=10) as client:
            return await self._fetch_with(client, back, width, height)

    async def _fetch_with(
        self, client: httpx.AsyncClient, back: int, width: int, height: int
    ) -> bytes:
        asked = await self._size_for(client, width, height)
        params = {"width": asked[0], "height": asked[1], "time": back}
        jpeg = await picture(client, params)
        if asked != (width, height):
            jpeg = await asyncio.to_thread(_fit, jpeg, width, height)
        return jpeg

    async def _size_for(
        self, client: httpx.AsyncClient, width: int, height: int
    ) -> tuple[int, int]:
        """The size asked of the intercom: the one wanted when it offers it, else the smallest
        it offers that covers it (or its largest), scaled afterwards."""
        if self._sizes is None:
            try:
                caps = await call(client, "/api/camera/caps")
                offered = caps.get("jpegResolution", [])
                self._sizes = sorted(
                    (int(size["width"]), int(size["height"])) for size in offered
                ) or [FALLBACK_SIZE]
            except (IntercomError, KeyError, TypeError, ValueError):
                return FALLBACK_SIZE
        if (width, height) in self._sizes:
            return width, height
        covering = [s for s in self._sizes if s[0] >= width and s[1] >= height]
        return covering[0] if covering else self._sizes[-1]

    def _now(self) -> float:
        return time.time() + self.offset


def _fit(jpeg: bytes, width: int, height: int) -> bytes:
    from doormail.camera.scale import letterbox  # Pillow: loaded with the first picture

    return letterbox(jpeg, width, height)


def _na(width: int, height: int, moment: float) -> bytes:
    from doormail.camera.na import na_image

    return na_image(width, height, datetime.fromtimestamp(moment, UTC))
