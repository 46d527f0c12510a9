"""The frame buffer and the rules that pick a mail's frames from it."""

from __future__ import annotations

from doormail.camera import spread
from doormail.camera.buffer import STALE_AFTER, Frame, FrameBuffer, choose_after, choose_spread

T = 1_700_000_000.0


def frames_at(*offsets: float) -> list[Frame]:
    return [Frame(T + offset, f"frame {offset}".encode()) for offset in offsets]


def test_buffer_keeps_only_buffer_seconds_of_frames() -> None:
    buffer = FrameBuffer(seconds=2)
    for frame in frames_at(0, 0.5, 1, 1.5, 2, 2.5, 3):
        buffer.add(frame)
    assert [frame.at - T for frame in buffer.frames()] == [1, 1.5, 2, 2.5, 3]


def test_buffer_drops_the_oldest_frames_beyond_its_byte_budget() -> None:
    buffer = FrameBuffer(seconds=60, max_bytes=2500)
    for i in range(10):
        buffer.add(Frame(T + i, bytes(1000)))
    assert len(buffer) == 2
    assert buffer.size_bytes == 2000
    assert [frame.at - T for frame in buffer.frames()] == [8, 9]


def test_buffer_ignores_a_frame_older_than_its_newest() -> None:
    buffer = FrameBuffer(seconds=60)
    for frame in frames_at(0, 1, 0.5):
        buffer.add(frame)
    assert [frame.at - T for frame in buffer.frames()] == [0, 1]


def test_call_snapshots_are_spread_evenly_from_ringing_to_end() -> None:
    frames = frames_at(*[i * 0.25 for i in range(41)])  # ten seconds at four a second
    chosen = choose_spread(frames, spread(T + 1, T + 9, 5))
    assert [frame.at - T for frame in chosen if frame] == [1, 3, 5, 7, 9]


def test_the_nearest_frame_stands_for_a_moment_between_frames() -> None:
    frames = frames_at(0, 1, 2)
    chosen = choose_spread(frames, [T + 0.4, T + 0.6, T + 1.5])
    assert [frame.at - T for frame in chosen if frame] == [0, 1, 1]


def test_no_frame_near_a_moment_means_none_for_it() -> None:
    frames = frames_at(0, 0.25, 0.5)  # the camera stopped after half a second
    chosen = choose_spread(frames, [T, T + 0.5 + STALE_AFTER + 0.1])
    assert chosen[0] is not None and chosen[0].at == T
    assert chosen[1] is None


def test_an_access_event_takes_the_frame_nearest_its_moment_and_the_ones_after() -> None:
    frames = frames_at(0, 0.25, 0.5, 0.75, 1.0, 1.25)
    chosen = choose_after(frames, T + 0.3, 3)
    assert [frame.at - T for frame in chosen if frame] == [0.25, 0.5, 0.75]


def test_frames_not_yet_taken_after_the_moment_are_none() -> None:
    frames = frames_at(0, 0.25, 0.5)
    chosen = choose_after(frames, T + 0.5, 3)
    assert [frame.at - T if frame else None for frame in chosen] == [0.5, None, None]


def test_frames_after_a_gap_do_not_count_as_following_the_moment() -> None:
    frames = frames_at(0, 0.25, 5, 5.25)  # the camera was away for almost five seconds
    chosen = choose_after(frames, T + 0.25, 3)
    assert [frame.at - T if frame else None for frame in chosen] == [0.25, None, None]


def test_an_empty_buffer_gives_none_for_every_snapshot() -> None:
    assert choose_spread([], [T, T + 1]) == [None, None]
    assert choose_after([], T, 2) == [None, None]
