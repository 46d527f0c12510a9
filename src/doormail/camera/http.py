"""HTTP cameras: a JPEG snapshot URL polled at the buffer's rate, or an MJPEG stream read as it
arrives — whichever the camera's reply turns out to be — with Basic or Digest authentication."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Generator

import httpx

from doormail.camera.buffer import Frame
from doormail.camera.mjpeg import MultipartSplitter, boundary_of
from doormail.camera.source import (
    CONNECT_TIMEOUT,
    MAX_FRAME_BYTES,
    READ_TIMEOUT,
    CameraError,
    credentials_of,
    redact,
)


class CameraAuth(httpx.Auth):
    """Answers whichever challenge the camera sends: Digest when offered (most cameras), else
    Basic. Credentials are sent only after a challenge, and the scheme is remembered so that
    later requests need no extra round trip."""

    def __init__(self, username: str, password: str) -> None:
        self._digest = httpx.DigestAuth(username, password)
        self._basic = httpx.BasicAuth(username, password)
        self._scheme: httpx.Auth | None = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._scheme is not None:
            yield from self._scheme.auth_flow(request)
            return
        response = yield request
        if response.status_code != 401:
            return
        offered = {
            header.split(" ", 1)[0].lower()
            for header in response.headers.get_list("www-authenticate")
        }
        if "digest" in offered:
            self._scheme = self._digest
        elif "basic" in offered:
            self._scheme = self._basic
        else:
            return
        yield from self._scheme.auth_flow(request)


class HttpCamera:
    """`camera.source` http or mjpeg. A reply of `multipart/x-mixed-replace` is read as a stream;
    any other reply is one snapshot, and the URL is asked again `interval` seconds later."""

    def __init__(self, url: str, username: str, password: str, interval: float) -> None:
        # Credentials written into the URL are answered like camera.username and .password;
        # the URL itself goes out without them, so that no log line of the HTTP client and
        # no error message can show the password.
        if not username:
            username, password = credentials_of(url)
        self._url = redact(url)
        self._auth = CameraAuth(username, password) if username or password else None
        self._interval = interval

    @property
    def where(self) -> str:
        return self._url

    async def frames(self) -> AsyncIterator[Frame]:
        timeout = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
        try:
            async with httpx.AsyncClient(
                auth=self._auth, timeout=timeout, follow_redirects=True
            ) as client:
                while True:
                    asked = time.monotonic()
                    async for frame in self._ask(client):
                        yield frame
                    await asyncio.sleep(max(0.0, self._interval - (time.monotonic() - asked)))
        except httpx.TimeoutException:
            raise CameraError(f"{self.where} did not answer in time") from None
        except httpx.HTTPError as error:
            raise CameraError(f"{self.where}: {type(error).__name__}: {error}") from None

    async def _ask(self, client: httpx.AsyncClient) -> AsyncIterator[Frame]:
        async with client.stream("GET", self._url) as response:
            _check_status(response, self.where)
            content_type = response.headers.get("content-type", "")
            if content_type.lower().startswith("multipart/"):
                async for frame in _stream(response, boundary_of(content_type)):
                    yield frame
                raise CameraError(f"{self.where} ended its stream")
            body = await _read_limited(response)
        yield Frame(time.time(), body)


def _check_status(response: httpx.Response, where: str) -> None:
    if response.status_code == 401:
        raise CameraError(f"{where} refused camera.username and camera.password (HTTP 401)")
    if response.status_code != 200:
        raise CameraError(f"{where} answered HTTP {response.status_code}")


async def _stream(response: httpx.Response, boundary: bytes | None) -> AsyncIterator[Frame]:
    splitter = MultipartSplitter(boundary)
    async for chunk in response.aiter_bytes():
        for part in splitter.feed(chunk):
            yield Frame(time.time(), part)


async def _read_limited(response: httpx.Response) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_FRAME_BYTES:
            raise CameraError(f"a snapshot is larger than {MAX_FRAME_BYTES} bytes")
    return bytes(body)
