"""RTSP cameras: the H.264 (or other) video stream decoded with PyAV in a thread of its own, a
frame kept every `interval` seconds and encoded as JPEG there, handed to the event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from doormail.camera.buffer import Frame
from doormail.camera.scale import encode_jpeg
from doormail.camera.source import (
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    CameraError,
    redact,
    with_credentials,
)

# The largest snapshot resolution; bigger pictures are reduced before they are buffered.
LARGEST = (1920, 1080)
# Buffered frames are scaled again for each mail, so they keep more quality than attachments.
BUFFER_QUALITY = 88

# Interleaved over the RTSP connection (TCP), which passes the firewalls and NAT that UDP often
# does not. Frames are stamped when decoded, so nothing may queue before the decoder: packets
# read while probing the stream are dropped rather than buffered (nobuffer), and probing stops
# after one second of video instead of five.
OPTIONS = {"rtsp_transport": "tcp", "fflags": "nobuffer", "analyzeduration": "1000000"}

_Item = Frame | CameraError | None


class RtspCamera:
    """`camera.source = rtsp`: frames as the stream delivers them, about one every `interval`."""

    def __init__(self, url: str, username: str, password: str, interval: float) -> None:
        self._url = with_credentials(url, username, password)
        self._where = redact(url)
        self._interval = interval

    @property
    def where(self) -> str:
        return self._where

    async def frames(self) -> AsyncIterator[Frame]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        stop = threading.Event()

        def hand_over(item: _Item) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:
                stop.set()  # the event loop has closed

        thread = threading.Thread(
            target=self._decode, args=(stop, hand_over), name="camera-rtsp", daemon=True
        )
        thread.start()
        try:
            while True:
                item = await queue.get()
                if item is None:
                    raise CameraError(f"{self.where} ended its stream")
                if isinstance(item, CameraError):
                    raise item
                yield item
        finally:
            # the thread notices within one frame, or at the latest after READ_TIMEOUT
            stop.set()

    def _decode(self, stop: threading.Event, hand_over: Callable[[_Item], None]) -> None:
        import av

        try:
            with av.open(
                self._url,
                options=OPTIONS,
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
            ) as container:
                if not container.streams.video:
                    raise CameraError(f"{self.where} sends no video")
                stream = container.streams.video[0]
                # frame threads would hold frames back; slices decode in parallel without delay
                stream.thread_type = "SLICE"
                self._keep_frames(container.decode(stream), stop, hand_over)
            hand_over(None)
        except CameraError as error:
            hand_over(error)
        except Exception as error:  # PyAV raises many kinds; each means the same here
            message = str(error).replace(self._url, self._where)
            hand_over(CameraError(f"{self.where}: {message}"))

    def _keep_frames(
        self, decoded: Any, stop: threading.Event, hand_over: Callable[[_Item], None]
    ) -> None:
        kept = 0.0
        for frame in decoded:
            if stop.is_set():
                return
            now = time.time()
            # every frame must be decoded (the next ones depend on it), but few are kept
            if now - kept < self._interval * 0.9:
                continue
            kept = now
            image = frame.to_image()
            if image.width > LARGEST[0] or image.height > LARGEST[1]:
                image.thumbnail(LARGEST)
            hand_over(Frame(now, encode_jpeg(image, BUFFER_QUALITY)))
