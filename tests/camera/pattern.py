"""Test pictures whose content is the moment they were made: 40 black or white cells (8 across,
5 down) holding 24 bits of hundredths of a second, an 8-bit check and a fixed 8-bit mark. They survive JPEG and
H.264 compression and scaling, so a test can read back which moment a snapshot shows.
Runs under Debian's python3 too (the RTSP server), so Pillow is imported only where needed."""

from __future__ import annotations

import io

COLUMNS, ROWS = 8, 5
WIDTH, HEIGHT = 320, 240
_VALUE_BITS = 24
_DARK, _LIGHT = 16, 235
_MARK = 0b10110010


def _check(value: int) -> int:
    return (sum(value.to_bytes(3, "big")) ^ 0xA5) & 0xFF


def code_of(at: float) -> int:
    value = round(at * 100) % (1 << _VALUE_BITS)
    return value | _check(value) << _VALUE_BITS | _MARK << (_VALUE_BITS + 8)


def gray_frame(at: float, width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """The picture for moment `at` as 8-bit grey pixels, row by row."""
    code = code_of(at)
    cell_w, cell_h = width // COLUMNS, height // ROWS
    rows = []
    for row in range(ROWS):
        line = b"".join(
            bytes([_LIGHT if code >> (row * COLUMNS + col) & 1 else _DARK]) * cell_w
            for col in range(COLUMNS)
        )
        rows.append(line * cell_h)
    return b"".join(rows)


def jpeg_frame(at: float, width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """The picture for moment `at` as a colour JPEG, as a camera would send it."""
    from PIL import Image

    image = Image.frombytes("L", (width, height), gray_frame(at, width, height)).convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def moment_of(jpeg: bytes, near: float) -> float | None:
    """The moment a snapshot shows (the one closest to `near` with its hundredths), or None when
    it is not such a picture (an N/A image, say)."""
    from PIL import Image

    image = Image.open(io.BytesIO(jpeg)).convert("L")
    width, height = image.size
    code = 0
    for row in range(ROWS):
        for col in range(COLUMNS):
            x = int((col + 0.5) * width / COLUMNS)
            y = int((row + 0.5) * height / ROWS)
            pixel = image.getpixel((x, y))
            assert isinstance(pixel, int)
            if 80 <= pixel <= 175:
                return None  # neither black nor white: not such a picture
            if pixel > 128:
                code |= 1 << (row * COLUMNS + col)
    value = code & ((1 << _VALUE_BITS) - 1)
    check, mark = code >> _VALUE_BITS & 0xFF, code >> (_VALUE_BITS + 8)
    if check != _check(value) or mark != _MARK:
        return None
    period = 1 << _VALUE_BITS
    base = round(near * 100)
    shift = (value - base) % period
    if shift > period // 2:
        shift -= period
    return (base + shift) / 100
