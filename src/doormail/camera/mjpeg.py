"""Splitting an MJPEG stream (`multipart/x-mixed-replace`) into its JPEG parts as the bytes
arrive. Cameras are loose with the format, so the splitter accepts a boundary with or without
its leading dashes, LF instead of CRLF, and parts with or without Content-Length. No byte is
searched twice for the same thing, so a stream that never sends what is awaited costs time in
proportion to its length (searching the whole buffer again at every chunk took minutes for the
8 MB a part may have)."""

from __future__ import annotations

import re

from doormail.camera.source import MAX_FRAME_BYTES, CameraError

# The blank line after a part's headers, `\r?\n\r?\n`: found by its line feeds (a regular
# expression would try every byte), with the CR before the first one if there is one.
_BLANK_LINES = (b"\n\n", b"\n\r\n")


def boundary_of(content_type: str) -> bytes | None:
    """The boundary named in a multipart Content-Type header, without leading dashes."""
    match = re.search(r'boundary\s*=\s*"?([^";]+)"?', content_type, re.IGNORECASE)
    if not match:
        return None
    return match.group(1).strip().lstrip("-").encode("latin-1") or None


class MultipartSplitter:
    """Fed chunks of a multipart body, returns each complete part's content. Parts whose
    Content-Type is not an image (some cameras interleave audio or metadata) are skipped."""

    def __init__(self, boundary: bytes | None, max_part: int = MAX_FRAME_BYTES) -> None:
        self._boundary = boundary
        self._max_part = max_part
        self._data = bytearray()
        self._state = "boundary"
        self._length: int | None = None
        self._image = True
        # How much of the buffer's start has been searched in vain for what the state awaits.
        self._searched = 0
        self._guessed_up_to = 0  # the whole lines looked at for a boundary

    def feed(self, chunk: bytes) -> list[bytes]:
        self._data += chunk
        parts: list[bytes] = []
        while True:
            before = self._state
            part = getattr(self, f"_read_{self._state}")()
            if part is not None:
                parts.append(part)
            elif self._state == before:
                self._searched = len(self._data)
                break
            self._searched = 0
        if len(self._data) > self._max_part + 65536:
            raise CameraError(f"a stream part is larger than {self._max_part} bytes")
        return parts

    def _read_boundary(self) -> None:
        if self._boundary is None:
            self._boundary = self._guess_boundary()
            if self._boundary is None:
                return
            self._searched = 0
        at = self._data.find(self._boundary, self._resume(len(self._boundary)))
        if at < 0:
            # keep a tail that may hold the start of the boundary
            del self._data[: max(0, len(self._data) - len(self._boundary))]
            return
        del self._data[: at + len(self._boundary)]
        self._state = "boundary_line"

    def _read_boundary_line(self) -> None:
        end = self._data.find(b"\n", self._resume(1))
        if end < 0:
            return
        del self._data[: end + 1]
        self._state = "headers"

    def _guess_boundary(self) -> bytes | None:
        """The first whole line that begins with `--`, without the dashes."""
        start = self._guessed_up_to
        while (end := self._data.find(b"\n", max(start, self._searched))) >= 0:
            line = bytes(self._data[start:end]).removesuffix(b"\r")
            if line.startswith(b"--") and len(line) > 2 and b"\r" not in line:
                return line.lstrip(b"-")
            start = end + 1
        self._guessed_up_to = start
        return None

    def _read_headers(self) -> None:
        if self._data.startswith(b"\r\n") or self._data.startswith(b"\n"):
            del self._data[: 2 if self._data.startswith(b"\r\n") else 1]
            # a part with no headers at all: its content follows the blank line
            self._length, self._image = None, True
            self._state = "body"
            return
        # A blank line is at most 4 bytes; the first 3 of one may have been searched already.
        start = self._resume(4)
        found = [(at, at + len(b)) for b in _BLANK_LINES if (at := self._data.find(b, start)) >= 0]
        if not found:
            return
        at, end = min(found)
        if self._data[at - 1 : at] == b"\r":
            at -= 1
        headers = bytes(self._data[:at]).decode("latin-1")
        del self._data[:end]
        self._length, self._image = _content_length(headers), _is_image(headers)
        self._state = "body"

    def _read_body(self) -> bytes | None:
        if self._length is not None:
            if len(self._data) < self._length:
                return None
            content = bytes(self._data[: self._length])
            del self._data[: self._length]
        else:
            assert self._boundary is not None
            at = self._data.find(self._boundary, self._resume(len(self._boundary)))
            if at < 0:
                return None
            # the content ends at the line break before the boundary's line
            end = max(self._data.rfind(b"\n", 0, at), 0)
            content = bytes(self._data[:end]).rstrip(b"\r")
            del self._data[:end]
        self._state = "boundary"
        return content if self._image else None

    def _resume(self, longest: int) -> int:
        """Where to search again for something at most `longest` bytes long: where the last
        search stopped, less what a match cut off by the end of the buffer may have begun."""
        return max(0, self._searched - longest + 1)


def _content_length(headers: str) -> int | None:
    match = re.search(r"^content-length\s*:\s*(\d+)\s*$", headers, re.IGNORECASE | re.MULTILINE)
    return int(match.group(1)) if match else None


def _is_image(headers: str) -> bool:
    match = re.search(r"^content-type\s*:\s*(\S+)", headers, re.IGNORECASE | re.MULTILINE)
    return match is None or match.group(1).lower().startswith("image/")
