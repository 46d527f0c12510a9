"""Camera benchmarks: the time to choose, scale and encode a mail's five 640x480 snapshots from
a full buffer of 1280x720 camera frames (target: under 50 ms), and the memory that buffer holds
for `camera.buffer_seconds` = 30 at the default rate."""

from __future__ import annotations

import statistics
import time
import tracemalloc
from datetime import UTC

from PIL import Image, ImageDraw

from doormail.camera import spread
from doormail.camera.buffer import DEFAULT_RATE, Frame, FrameBuffer, choose_spread
from doormail.camera.rtsp import BUFFER_QUALITY
from doormail.camera.scale import encode_jpeg, render

SECONDS = 30
CAMERA = (1280, 720)
RUNS = 30


def camera_picture(seed: int) -> bytes:
    """A 1280x720 JPEG with about the detail (and so the size) of a door camera's picture of an
    entrance: smooth surfaces, edges, some sensor noise."""
    scene = Image.effect_mandelbrot(CAMERA, (-2.2 + seed * 0.01, -1.2, 1.0, 1.2), 48)
    light = Image.linear_gradient("L").resize(CAMERA)
    image = Image.merge("RGB", (scene, light, light.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    noise = Image.effect_noise(CAMERA, 6).convert("RGB")
    image = Image.blend(image, noise, 0.12)
    draw = ImageDraw.Draw(image)
    for i in range(6):
        box = (100 + i * 180, 200 + i * 40, 220 + i * 180, 620)
        draw.rectangle(box, outline=(230, 230, 230), width=3)
    draw.text((40, 40), f"2025-01-01 12:00:{seed:02d}", fill=(255, 255, 255))
    return encode_jpeg(image, BUFFER_QUALITY)


def full_buffer(start: float, pictures: list[bytes]) -> FrameBuffer:
    buffer = FrameBuffer(SECONDS)
    count = int(SECONDS * DEFAULT_RATE)
    for i in range(count):
        # a copy each time, as frames from a camera are separate objects
        jpeg = bytes(bytearray(pictures[i % len(pictures)]))
        buffer.add(Frame(start + i / DEFAULT_RATE, jpeg))
    return buffer


def snapshots_ms(buffer: FrameBuffer, start: float) -> list[float]:
    took = []
    for run in range(RUNS):
        ringing = start + 5 + run * 0.1
        asked = time.perf_counter()
        frames = buffer.frames()
        moments = spread(ringing, ringing + 12, 5)
        images, missing = render(choose_spread(frames, moments), moments, 640, 480, UTC)
        took.append((time.perf_counter() - asked) * 1000)
        assert len(images) == 5 and missing == 0
    return took


def run() -> list[tuple[str, float, str]]:
    pictures = [camera_picture(seed) for seed in range(8)]
    start = time.time() - SECONDS
    tracemalloc.start()
    buffer = full_buffer(start, pictures)
    held, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    took = snapshots_ms(buffer, start)
    return [
        ("camera_snapshots_5x640x480_ms", round(statistics.median(took), 2), "ms"),
        ("camera_snapshots_5x640x480_max_ms", round(max(took), 2), "ms"),
        ("camera_buffer_30s_720p_mb", round(held / 1e6, 2), "MB"),
        ("camera_buffer_30s_frames", float(len(buffer)), "frames"),
        ("camera_frame_720p_kb", round(statistics.mean(map(len, pictures)) / 1e3, 1), "kB"),
    ]


if __name__ == "__main__":
    for name, value, unit in run():
        print(name, value, unit)
