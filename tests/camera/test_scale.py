"""Scaling frames to the chosen resolution: aspect ratio kept with black bars, N/A for frames
that are not pictures."""

from __future__ import annotations

import io
from datetime import UTC

import pytest
from PIL import Image

from doormail.camera.buffer import Frame
from doormail.camera.scale import BadFrame, is_jpeg, letterbox, render
from tests.camera.pattern import jpeg_frame, moment_of

T = 1_700_000_000.0


def white_jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (255, 255, 255)).save(out, "JPEG")
    return out.getvalue()


def luma(jpeg: bytes, x: int, y: int) -> int:
    pixel = Image.open(io.BytesIO(jpeg)).convert("L").getpixel((x, y))
    assert isinstance(pixel, int)
    return pixel


@pytest.mark.parametrize("resolution", ["160x120", "352x288", "640x480", "1280x960"])
def test_snapshot_has_exactly_the_chosen_resolution(resolution: str) -> None:
    width, height = (int(side) for side in resolution.split("x"))
    scaled = letterbox(jpeg_frame(T), width, height)
    assert Image.open(io.BytesIO(scaled)).size == (width, height)
    assert moment_of(scaled, T) == T


def test_a_wide_frame_in_a_four_by_three_snapshot_gets_bars_above_and_below() -> None:
    scaled = letterbox(white_jpeg(1280, 720), 640, 480)  # 640x360 of picture, 60 rows each side
    assert luma(scaled, 320, 30) < 20
    assert luma(scaled, 320, 450) < 20
    assert luma(scaled, 320, 240) > 235
    assert luma(scaled, 5, 240) > 235


def test_a_four_by_three_frame_in_a_wide_snapshot_gets_bars_left_and_right() -> None:
    scaled = letterbox(white_jpeg(640, 480), 1280, 720)  # 960x720 of picture
    assert luma(scaled, 60, 360) < 20
    assert luma(scaled, 1220, 360) < 20
    assert luma(scaled, 640, 360) > 235


def test_bytes_that_are_not_a_jpeg_are_refused() -> None:
    assert not is_jpeg(b"garbage" * 100)
    assert not is_jpeg(b"\xff\xd8" + bytes(200))
    assert is_jpeg(jpeg_frame(T))
    with pytest.raises(BadFrame):
        letterbox(b"\xff\xd8\xff\xe0garbage", 640, 480)


def test_a_missing_or_broken_frame_becomes_the_na_image() -> None:
    good = Frame(T, jpeg_frame(T))
    broken = Frame(T + 1, jpeg_frame(T + 1)[:300])
    images, missing = render([good, None, broken], [T, T + 0.5, T + 1], 320, 240, UTC)
    assert missing == 2
    assert moment_of(images[0], T) == T
    assert moment_of(images[1], T) is None
    assert moment_of(images[2], T) is None
    assert all(Image.open(io.BytesIO(image)).size == (320, 240) for image in images)


def test_a_frame_already_scaled_to_a_size_is_not_scaled_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import doormail.camera.scale as scale

    calls: list[tuple[int, int]] = []
    real = scale.letterbox

    def counted(jpeg: bytes, width: int, height: int, quality: int = 80) -> bytes:
        calls.append((width, height))
        return real(jpeg, width, height, quality)

    monkeypatch.setattr(scale, "letterbox", counted)
    frames = [Frame(T, jpeg_frame(T, 640, 480)), Frame(T + 0.25, jpeg_frame(T + 0.25, 640, 480))]
    scaled = scale.Scaled(keep=2)
    first, _ = render(frames, [T, T + 0.25], 320, 240, UTC, scaled)
    again, _ = render(frames, [T, T + 0.25], 320, 240, UTC, scaled)
    assert again == first
    assert calls == [(320, 240), (320, 240)]
    render(frames[:1], [T], 160, 120, UTC, scaled)  # a third picture: the oldest is forgotten
    render(frames[:1], [T], 320, 240, UTC, scaled)
    assert calls == [(320, 240), (320, 240), (160, 120), (320, 240)]
