"""The time-indexed frame buffer: encoded JPEG frames with the moment each was taken, kept for
`camera.buffer_seconds` within a byte budget, and the rules that pick a mail's frames from it."""

from __future__ import annotations

import bisect
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

# Frames farther than this from the moment they stand for are not shown: the camera was not
# answering then, and an old picture would mislead more than "N/A" does.
STALE_AFTER = 1.5
# Frames kept per second; a stream that delivers more has the extra frames skipped.
DEFAULT_RATE = 4.0
# Whatever the camera sends, the buffer never holds more than this many bytes.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Frame:
    """One JPEG as the camera delivered it and the UNIX time it was received."""

    at: float
    jpeg: bytes


class FrameBuffer:
    """Frames in time order, the oldest dropped when they are older than `seconds` or when the
    buffer would exceed `max_bytes`. Safe to fill from one thread and read from others."""

    def __init__(self, seconds: float, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.seconds = seconds
        self.max_bytes = max_bytes
        self._frames: deque[Frame] = deque()
        self._bytes = 0
        self._lock = threading.Lock()

    def add(self, frame: Frame) -> None:
        with self._lock:
            if self._frames and frame.at < self._frames[-1].at:
                return  # a clock step backwards; keep the index sorted
            self._frames.append(frame)
            self._bytes += len(frame.jpeg)
            self._trim(frame.at)

    def _trim(self, now: float) -> None:
        frames = self._frames
        while frames and (frames[0].at < now - self.seconds or self._bytes > self.max_bytes):
            self._bytes -= len(frames.popleft().jpeg)

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()
            self._bytes = 0

    def frames(self) -> list[Frame]:
        """A snapshot of the buffer, oldest first."""
        with self._lock:
            return list(self._frames)

    def newest(self) -> Frame | None:
        with self._lock:
            return self._frames[-1] if self._frames else None

    @property
    def size_bytes(self) -> int:
        """The bytes of JPEG data held."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._frames)


def nearest_index(frames: Sequence[Frame], moment: float) -> int | None:
    """The index of the frame taken closest to `moment` (the earlier one on a tie)."""
    if not frames:
        return None
    right = bisect.bisect_left(frames, moment, key=lambda frame: frame.at)
    if right == 0:
        return 0
    if right == len(frames):
        return right - 1
    before, after = frames[right - 1].at, frames[right].at
    return right - 1 if moment - before <= after - moment else right


def choose_spread(frames: Sequence[Frame], moments: Sequence[float]) -> list[Frame | None]:
    """For each moment the nearest frame, or None when none was taken near it."""
    chosen: list[Frame | None] = []
    for moment in moments:
        index = nearest_index(frames, moment)
        frame = frames[index] if index is not None else None
        chosen.append(frame if frame and abs(frame.at - moment) <= STALE_AFTER else None)
    return chosen


def choose_after(frames: Sequence[Frame], moment: float, count: int) -> list[Frame | None]:
    """The frame nearest `moment` and the `count - 1` frames that followed it; None for those
    not taken (the camera stopped, or they are not captured yet)."""
    index = nearest_index(frames, moment)
    if index is None or abs(frames[index].at - moment) > STALE_AFTER:
        return [None] * count
    chosen: list[Frame | None] = [frames[index]]
    for frame in frames[index + 1 : index + count]:
        previous = chosen[-1]
        if previous is None or frame.at - previous.at > STALE_AFTER:
            break  # a gap: the camera stopped answering after the moment
        chosen.append(frame)
    return chosen + [None] * (count - len(chosen))
