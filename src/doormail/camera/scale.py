"""Turning buffered camera frames into mail attachments: decoded, scaled to the chosen resolution
keeping the aspect ratio (black bars fill the rest), re-encoded at a quality that suits a phone.
CPU work only; callers run it in a thread."""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime, tzinfo

from PIL import Image, UnidentifiedImageError

from doormail.camera.buffer import Frame
from doormail.camera.na import na_image

# Quality 80 with 4:2:0 chroma keeps a 640x480 snapshot near 40 kB: sharp on a phone's screen,
# light on a mobile connection.
JPEG_QUALITY = 80
# A frame claiming more pixels than an 8K picture is not a camera frame but damage or an attack.
MAX_PIXELS = 7680 * 4320


class BadFrame(ValueError):
    """Bytes that do not decode as a usable JPEG picture."""


def open_jpeg(jpeg: bytes, fit_within: tuple[int, int] | None = None) -> Image.Image:
    """The picture in `jpeg` as RGB, decoded at a reduced scale when `fit_within` allows it."""
    try:
        image = Image.open(io.BytesIO(jpeg), formats=("JPEG",))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as error:
        raise BadFrame(f"not a JPEG picture ({error})") from None
    with image:
        width, height = image.size
        if width * height > MAX_PIXELS or width < 1 or height < 1:
            raise BadFrame(f"a {width}x{height} frame is not plausible")
        if fit_within is not None:
            # libjpeg can decode at 1/2, 1/4 or 1/8 scale, far faster than a full decode
            image.draft("RGB", fit_within)
        try:
            return image.convert("RGB")
        except (OSError, SyntaxError, ValueError) as error:
            raise BadFrame(f"a damaged JPEG picture ({error})") from None


def encode_jpeg(image: Image.Image, quality: int = JPEG_QUALITY) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def letterbox(jpeg: bytes, width: int, height: int, quality: int = JPEG_QUALITY) -> bytes:
    """`jpeg` scaled to fit `width`x`height` without distortion, centred on black."""
    inside = _contained(_jpeg_size(jpeg), (width, height))
    image = open_jpeg(jpeg, inside)
    if image.size != inside:
        image = image.resize(inside, Image.Resampling.BICUBIC, reducing_gap=2.0)
    if inside != (width, height):
        canvas = Image.new("RGB", (width, height), (0, 0, 0))
        canvas.paste(image, ((width - inside[0]) // 2, (height - inside[1]) // 2))
        image = canvas
    return encode_jpeg(image, quality)


def _jpeg_size(jpeg: bytes) -> tuple[int, int]:
    try:
        with Image.open(io.BytesIO(jpeg), formats=("JPEG",)) as image:
            return image.size
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError):
        raise BadFrame("not a JPEG picture") from None


def _contained(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """The largest size of `size`'s aspect ratio that fits in `box`."""
    scale = min(box[0] / size[0], box[1] / size[1])
    return (
        min(box[0], max(1, round(size[0] * scale))),
        min(box[1], max(1, round(size[1] * scale))),
    )


class Scaled:
    """The frames scaled most recently, by frame and size. Events close together pick the same
    frames from the buffer (four a second), and every recipient's mail of one event shows the
    same ones: each is decoded and encoded once. Safe to use from several threads."""

    def __init__(self, keep: int = 32) -> None:
        self._keep = keep
        self._kept: OrderedDict[tuple[Frame, int, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def letterbox(self, frame: Frame, width: int, height: int) -> bytes:
        key = (frame, width, height)
        with self._lock:
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
                return found
        scaled = letterbox(frame.jpeg, width, height)
        with self._lock:
            self._kept[key] = scaled
            while len(self._kept) > self._keep:
                self._kept.popitem(last=False)
        return scaled


def render(
    chosen: Sequence[Frame | None],
    moments: Sequence[float],
    width: int,
    height: int,
    zone: tzinfo,
    scaled: Scaled | None = None,
) -> tuple[list[bytes], int]:
    """The attachments for the chosen frames, and how many of them are N/A because no usable
    frame was there (missing, or bytes that were not a picture); `scaled` remembers frames
    scaled before."""
    images: list[bytes] = []
    missing = 0
    for frame, moment in zip(chosen, moments, strict=True):
        try:
            if frame is None:
                raise BadFrame("no frame")
            if scaled is not None:
                images.append(scaled.letterbox(frame, width, height))
            else:
                images.append(letterbox(frame.jpeg, width, height))
        except BadFrame:
            missing += 1
            images.append(na_image(width, height, datetime.fromtimestamp(moment, zone)))
    return images, missing


def is_jpeg(data: bytes) -> bool:
    """Whether `data` starts like a JPEG picture of plausible size (its header only is read)."""
    if not data.startswith(b"\xff\xd8"):
        return False
    try:
        with Image.open(io.BytesIO(data), formats=("JPEG",)) as image:
            width, height = image.size
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError):
        return False
    return 0 < width * height <= MAX_PIXELS
