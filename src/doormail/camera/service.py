"""The camera of a running doormail: follows the saved `camera.*` settings, captures into the
frame buffer while a camera is configured (reconnecting with growing back-off), and answers
`snapshots()` for mails and previews without ever blocking them for long."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from doormail.camera import Pictures, spread
from doormail.camera.buffer import (
    DEFAULT_RATE,
    STALE_AFTER,
    Frame,
    FrameBuffer,
    choose_after,
    choose_spread,
)
from doormail.camera.open import source_for
from doormail.camera.source import CameraError, Source
from doormail.settings import Camera, Settings

if TYPE_CHECKING:
    from doormail.camera.scale import Scaled  # Pillow: loaded with the first picture

log = logging.getLogger("doormail.camera")

CAMERA_DID_NOT_ANSWER = "The camera did not answer."
# The longest a mail waits for frames that are not captured yet.
MAX_WAIT = 2.0
# How often the saved settings are looked at for a changed `camera.*`.
SETTINGS_POLL = 1.0
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 15.0
# Consecutive frames that are not pictures before the connection counts as failed.
BAD_FRAMES = 3
_WAIT_STEP = 0.02

State = Literal["off", "connecting", "receiving", "failing"]


@dataclass(frozen=True)
class CameraStatus:
    """What the camera is doing, for the API and the web UI."""

    source: str
    where: str
    state: State
    error: str | None
    last_frame_at: float | None
    frames: int
    buffer_bytes: int


class Capture:
    """One camera's capture: reads its source into `buffer`, keeping about `rate` frames a
    second, and reconnects after a failure with a delay that doubles up to BACKOFF_MAX."""

    def __init__(self, source: Source, buffer: FrameBuffer, rate: float) -> None:
        self.source = source
        self.buffer = buffer
        self.state: State = "connecting"
        self.error: str | None = None
        self._interval = 1.0 / rate
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="camera-capture")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.state = "off"

    async def _run(self) -> None:
        delay = BACKOFF_FIRST
        while True:
            self.state = "connecting"
            if await self._read():
                delay = BACKOFF_FIRST
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    async def _read(self) -> bool:
        """Read one connection's frames; whether any was kept."""
        from doormail.camera.scale import is_jpeg  # Pillow: loaded with the first picture

        received, bad = False, 0
        try:
            async for frame in self.source.frames():
                if self._too_soon(frame):
                    continue  # a stream faster than the buffer's rate: not even looked at
                if not is_jpeg(frame.jpeg):
                    bad += 1
                    if bad >= BAD_FRAMES:
                        raise CameraError(f"{self.source.where} sends no JPEG pictures")
                    continue
                bad = 0
                self._keep(frame)
                received = True
        except CameraError as error:
            self._failed(str(error))
        except Exception as error:  # a capture must outlive any one camera's surprise
            log.exception("camera: reading %s failed", self.source.where)
            self._failed(f"{self.source.where}: {type(error).__name__}")
        return received

    def _too_soon(self, frame: Frame) -> bool:
        newest = self.buffer.newest()
        return newest is not None and frame.at - newest.at < self._interval * 0.9

    def _keep(self, frame: Frame) -> None:
        self.buffer.add(frame)
        log.debug("camera: a picture of %d bytes from %s", len(frame.jpeg), self.source.where)
        if self.state != "receiving":
            log.info("camera: receiving pictures from %s", self.source.where)
        self.state, self.error = "receiving", None

    def _failed(self, message: str) -> None:
        if message != self.error:
            log.warning("camera: %s", message)
        self.state, self.error = "failing", message


class CameraService:
    """`service.camera`: the snapshots for mails, following the saved settings. `run()` is the
    background runner; without it (a command-line tool) each call captures just for itself."""

    def __init__(
        self, load: Callable[[], Settings], *, rate: float = DEFAULT_RATE, wait: float = MAX_WAIT
    ) -> None:
        self._load = load
        self.rate = rate
        self.wait = wait
        self._camera = Camera()
        self._zone: tzinfo = UTC
        self._capture: Capture | None = None
        self._owner: asyncio.AbstractEventLoop | None = None
        self._scaled: Scaled | None = None

    @property
    def camera(self) -> Camera:
        """The `camera.*` settings being followed."""
        return self._camera

    @property
    def buffer(self) -> FrameBuffer | None:
        return self._capture.buffer if self._capture else None

    def status(self) -> CameraStatus:
        capture = self._capture
        newest = capture.buffer.newest() if capture else None
        return CameraStatus(
            source=self._camera.source,
            where=capture.source.where if capture else "",
            state=capture.state if capture else "off",
            error=capture.error if capture else None,
            last_frame_at=newest.at if newest else None,
            frames=len(capture.buffer) if capture else 0,
            buffer_bytes=capture.buffer.size_bytes if capture else 0,
        )

    async def run(self) -> None:
        """Follow the settings until cancelled, capturing while a camera is configured."""
        self._owner = asyncio.get_running_loop()
        try:
            while True:
                await self.refresh()
                await asyncio.sleep(SETTINGS_POLL)
        finally:
            self._owner = None
            capture, self._capture, self._camera = self._capture, None, Camera()
            if capture is not None:
                await capture.stop()

    async def refresh(self) -> None:
        """Load the settings now and restart the capture if `camera.*` changed."""
        try:
            settings = await asyncio.to_thread(self._load)
        except Exception:
            log.exception("camera: cannot read the settings")
            return
        self._zone = _zone(settings.device.timezone)
        if settings.camera == self._camera:
            return
        # swapped without an await in between, so concurrent refreshes cannot both start one
        old, self._camera = self._capture, settings.camera
        self._capture = self._start(settings.camera)
        if old is not None:
            await old.stop()

    def _start(self, camera: Camera) -> Capture | None:
        source = source_for(camera, self.rate)
        if source is None:
            return None
        capture = Capture(source, FrameBuffer(camera.buffer_seconds), self.rate)
        capture.start()
        return capture

    async def snapshots(
        self, start: float, end: float, count: int, width: int, height: int
    ) -> Pictures:
        """`count` JPEGs of `width`x`height` for the span `start`..`end` (UNIX seconds): spread
        evenly over it, or, when it is one moment, the frame nearest it and the ones after.
        Never raises; waits at most `wait` seconds for frames not captured yet."""
        if count <= 0:
            return Pictures([])
        end = max(start, end)
        try:
            return await self._snapshots(start, end, count, width, height)
        except Exception:
            log.exception("camera: snapshots failed; the mail carries N/A images")
            moments = spread(start, end, count)
            return Pictures(await self._na(moments, width, height), [CAMERA_DID_NOT_ANSWER])

    async def _snapshots(
        self, start: float, end: float, count: int, width: int, height: int
    ) -> Pictures:
        loop = asyncio.get_running_loop()
        if self._owner is loop:
            await self.refresh()
        elif self._owner is None:
            return await self._captured_now(start, end, count, width, height)
        return await self._from(self._capture, start, end, count, width, height)

    async def _captured_now(
        self, start: float, end: float, count: int, width: int, height: int
    ) -> Pictures:
        """Without the runner nothing was buffered: connect to the camera for this one call and
        take the first pictures it gives (a command-line Apply & Test, say)."""
        settings = await asyncio.to_thread(self._load)
        self._zone = _zone(settings.device.timezone)
        capture = self._start(settings.camera)
        if capture is None:
            return await self._from(None, start, end, count, width, height)
        try:
            deadline = time.monotonic() + self.wait
            while len(capture.buffer) < count and time.monotonic() < deadline:
                await asyncio.sleep(_WAIT_STEP)
            frames = capture.buffer.frames()[:count]
        finally:
            await capture.stop()
        chosen: list[Frame | None] = [*frames, *[None] * (count - len(frames))]
        moments = [frame.at for frame in frames] + spread(start, end, count)[len(frames) :]
        from doormail.camera.scale import render

        images, missing = await asyncio.to_thread(
            render, chosen, moments, width, height, self._zone
        )
        return Pictures(images, [CAMERA_DID_NOT_ANSWER] if missing else [])

    async def _from(
        self, capture: Capture | None, start: float, end: float, count: int, w: int, h: int
    ) -> Pictures:
        if capture is None:
            return Pictures(await self._na(spread(start, end, count), w, h))
        interval = 1.0 / self.rate
        if end > start:
            moments = spread(start, end, count)
            # The buffer keeps a frame every `interval`: one taken within that of the call's
            # end shows its end as well as the buffer can, and waiting for the next would hold
            # the mail back for nothing a resident could see.
            await self._wait_for(capture.buffer, end - interval)
            chosen = choose_spread(capture.buffer.frames(), moments)
        else:
            moments = [start + i * interval for i in range(count)]
            await self._wait_for(capture.buffer, moments[-1])
            chosen = choose_after(capture.buffer.frames(), start, count)
        from doormail.camera.scale import Scaled, render

        if self._scaled is None:
            self._scaled = Scaled()
        images, missing = await asyncio.to_thread(
            render, chosen, moments, w, h, self._zone, self._scaled
        )
        return Pictures(images, [CAMERA_DID_NOT_ANSWER] if missing else [])

    async def _wait_for(self, buffer: FrameBuffer, target: float) -> None:
        """Until a frame taken at or after `target` is in `buffer`; not longer than `wait`, nor
        past the moment when a new frame would be too late to stand for `target`."""
        deadline = time.monotonic() + self.wait
        while time.monotonic() < deadline and time.time() <= target + STALE_AFTER:
            newest = buffer.newest()
            if newest is not None and newest.at >= target:
                return
            await asyncio.sleep(_WAIT_STEP)

    async def _na(self, moments: list[float], width: int, height: int) -> list[bytes]:
        from doormail.camera.na import na_image

        zone = self._zone
        return await asyncio.to_thread(
            lambda: [na_image(width, height, datetime.fromtimestamp(t, zone)) for t in moments]
        )


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return UTC
