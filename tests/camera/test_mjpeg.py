"""Splitting MJPEG streams as cameras really send them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doormail.camera.mjpeg import MultipartSplitter, boundary_of
from doormail.camera.source import CameraError

PICTURES = [
    b"\xff\xd8first\r\n--not-a-boundary\xff\xd9",
    b"\xff\xd8second\xff\xd9",
    b"\xff\xd8third\xff\xd9",
]


def stream(
    parts: list[bytes], *, boundary: bytes = b"--frame", length: bool = True, eol: bytes = b"\r\n"
) -> bytes:
    out = b""
    for part in parts:
        headers = b"Content-Type: image/jpeg" + eol
        if length:
            headers += b"Content-Length: " + str(len(part)).encode() + eol
        out += boundary + eol + headers + eol + part + eol
    return out


def split(data: bytes, boundary: bytes | None, chunk: int) -> list[bytes]:
    splitter = MultipartSplitter(boundary)
    parts: list[bytes] = []
    for at in range(0, len(data), chunk):
        parts += splitter.feed(data[at : at + chunk])
    return parts


@pytest.mark.parametrize("chunk", [1, 7, 64, 100_000])
def test_parts_with_content_length_come_out_whole_whatever_the_chunks(chunk: int) -> None:
    assert split(stream(PICTURES), b"frame", chunk) == PICTURES


@pytest.mark.parametrize("chunk", [1, 5, 100_000])
def test_parts_without_content_length_end_at_the_next_boundary(chunk: int) -> None:
    pictures = [b"\xff\xd8one\xff\xd9", b"\xff\xd8two\xff\xd9", b"\xff\xd8three\xff\xd9"]
    data = stream(pictures, length=False) + b"--frame\r\n"
    assert split(data, b"frame", chunk) == pictures


def test_line_feeds_without_carriage_returns_are_accepted() -> None:
    pictures = [b"\xff\xd8one\xff\xd9", b"\xff\xd8two\xff\xd9"]
    assert split(stream(pictures, eol=b"\n"), b"frame", 3) == pictures


def test_the_boundary_is_found_when_the_header_does_not_name_it() -> None:
    assert split(stream(PICTURES, boundary=b"--myboundary"), None, 10) == PICTURES


def test_boundary_is_read_with_or_without_dashes_and_quotes() -> None:
    assert boundary_of("multipart/x-mixed-replace; boundary=frame") == b"frame"
    assert boundary_of('multipart/x-mixed-replace;boundary="--myboundary"') == b"myboundary"
    assert boundary_of("multipart/x-mixed-replace") is None


def test_parts_that_are_not_pictures_are_skipped() -> None:
    data = b"--frame\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello\r\n"
    data += stream(PICTURES[1:])
    assert split(data, b"frame", 9) == PICTURES[1:]


def test_a_part_larger_than_the_limit_is_refused() -> None:
    splitter = MultipartSplitter(b"frame", max_part=1000)
    splitter.feed(b"--frame\r\nContent-Type: image/jpeg\r\n\r\n")
    with pytest.raises(CameraError, match="larger than 1000 bytes"):
        for _ in range(100):
            splitter.feed(bytes(1000))


def split_in(data: bytes, boundary: bytes | None, sizes: list[int]) -> list[bytes]:
    splitter = MultipartSplitter(boundary)
    parts: list[bytes] = []
    at = 0
    for size in sizes:
        parts += splitter.feed(data[at : at + size])
        at += size
    return parts + splitter.feed(data[at:])


@settings(max_examples=300, deadline=None)
@given(
    pictures=st.lists(
        st.binary(max_size=40).map(lambda b: b"\xff\xd8" + b + b"\xff\xd9"), max_size=4
    ),
    length=st.booleans(),
    eol=st.sampled_from([b"\r\n", b"\n"]),
    named=st.booleans(),
    junk=st.binary(max_size=20),
    sizes=st.lists(st.integers(1, 40), max_size=40),
)
def test_a_stream_gives_the_same_parts_however_it_arrives_in_chunks(
    pictures: list[bytes], length: bool, eol: bytes, named: bool, junk: bytes, sizes: list[int]
) -> None:
    # What was searched in vain is not searched again: the chunks must not change what is found.
    data = junk + eol + stream(pictures, length=length, eol=eol) + b"--frame" + eol
    boundary = b"frame" if named else None
    assert split_in(data, boundary, sizes) == split_in(data, boundary, [])
