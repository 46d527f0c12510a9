"""What every camera source is: an async stream of frames that ends or raises `CameraError` when
the camera stops answering (the capture loop reconnects), and the helpers the sources share
(timeouts, the frame size limit, credentials in a URL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from doormail.camera.buffer import Frame

# Connecting must not take longer than this, nor may a stream fall silent for longer.
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 5.0
# A frame bigger than this is not a camera picture; reading stops before memory runs out.
MAX_FRAME_BYTES = 8 * 1024 * 1024


class CameraError(Exception):
    """The camera could not be reached or sent something unusable; the message says which and
    never contains the camera's password."""


class Source(Protocol):
    """A camera: `frames()` yields frames until the connection ends or fails."""

    @property
    def where(self) -> str:
        """The camera's address without credentials, for logs and status."""
        ...

    def frames(self) -> AsyncIterator[Frame]: ...


def redact(url: str) -> str:
    """`url` without its user name and password."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def credentials_of(url: str) -> tuple[str, str]:
    """The user name and password written into `url` (`http://user:pw@host/`), decoded."""
    parts = urlsplit(url)
    return unquote(parts.username or ""), unquote(parts.password or "")


def with_credentials(url: str, username: str, password: str) -> str:
    """`url` carrying `username` and `password` in its authority (the form RTSP clients use);
    unchanged when no user name is set."""
    if not username:
        return url
    parts = urlsplit(redact(url))
    userinfo = quote(username, safe="")
    if password:
        userinfo += ":" + quote(password, safe="")
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc}"))
