"""The camera service against real cameras on loopback: HTTP snapshots behind Digest or Basic
authentication, an MJPEG stream, an RTSP server; and cameras that stop, never answer or send
garbage. Every picture shows the moment it was made, so the tests read back which was chosen."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest

from doormail.app import Service
from doormail.camera.buffer import STALE_AFTER
from doormail.camera.service import CAMERA_DID_NOT_ANSWER, MAX_WAIT, CameraService
from doormail.settings import apply_patch
from tests.camera.cameras import (
    PASSWORD,
    USER,
    HttpCameraServer,
    http_camera,
    rtsp_camera,
    silent_camera,
)
from tests.camera.pattern import moment_of

# A picture's moment against the moment it stands for: the buffer keeps four frames a second,
# so the nearest is at most an eighth of a second away, plus the camera's own delay.
CLOSE = 0.35
# A mail that cannot have its pictures must still leave within about this long.
ON_TIME = MAX_WAIT + 1.0


def configure(service: Service, **camera: Any) -> None:
    service.settings.save(apply_patch(service.settings.load(), {"camera": camera}))


def use_snapshot_url(service: Service, camera: HttpCameraServer, password: str = PASSWORD) -> None:
    """`camera.source = http` polling the test camera's /snapshot.jpg as its user."""
    configure(
        service, source="http", url=camera.url("/snapshot.jpg"), username=USER, password=password
    )


@contextlib.asynccontextmanager
async def running(camera: CameraService) -> AsyncIterator[CameraService]:
    task = asyncio.create_task(camera.run())
    try:
        yield camera
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def buffered(camera: CameraService, seconds: float, timeout: float = 10.0) -> None:
    """Until the buffer holds `seconds` of frames."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frames = camera.buffer.frames() if camera.buffer else []
        if frames and frames[-1].at - frames[0].at >= seconds:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {seconds} s of frames within {timeout} s: {camera.status()}")


async def until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def moments(images: list[bytes], near: float) -> list[float | None]:
    return [moment_of(image, near) for image in images]


def assert_close(shown: list[float | None], expected: list[float]) -> None:
    assert None not in shown, shown
    for got, want in zip(shown, expected, strict=True):
        assert got is not None and abs(got - want) <= CLOSE, (shown, expected)


async def test_call_snapshots_from_an_http_camera_with_digest_auth_span_ringing_to_end(
    service: Service,
) -> None:
    with http_camera("digest") as camera:
        use_snapshot_url(service, camera)
        async with running(service.camera) as cameras:
            await buffered(cameras, 2.0)
            end = time.time()
            start = end - 2.0
            shots = await cameras.snapshots(start, end, 3, 320, 240)
    assert shots.notes == []
    assert_close(moments(shots.images, end), [start, start + 1.0, end])


async def test_an_http_camera_with_basic_auth_gives_the_picture_of_the_moment(
    service: Service,
) -> None:
    with http_camera("basic") as camera:
        use_snapshot_url(service, camera)
        async with running(service.camera) as cameras:
            await buffered(cameras, 0.5)
            now = time.time()
            shots = await cameras.snapshots(now, now, 1, 640, 480)
    assert shots.notes == []
    assert_close(moments(shots.images, now), [now])


async def test_a_wrong_camera_password_gives_na_and_says_the_camera_did_not_answer(
    service: Service,
) -> None:
    with http_camera("digest") as camera:
        use_snapshot_url(service, camera, password="wrong")
        async with running(service.camera) as cameras:
            await until(lambda: cameras.status().state == "failing")
            now = time.time()
            shots = await cameras.snapshots(now, now, 1, 320, 240)
            status = cameras.status()
    assert shots.notes == [CAMERA_DID_NOT_ANSWER]
    assert moments(shots.images, now) == [None]
    assert status.error is not None and "HTTP 401" in status.error
    assert "wrong" not in status.error


async def test_an_mjpeg_stream_is_kept_at_the_buffer_rate_and_gives_the_moments_after_an_access(
    service: Service,
) -> None:
    with http_camera("digest", fps=12) as camera:
        configure(
            service,
            source="mjpeg",
            url=camera.url("/stream.mjpg"),
            username=USER,
            password=PASSWORD,
        )
        async with running(service.camera) as cameras:
            await buffered(cameras, 1.0)
            moment = time.time() - 0.5
            shots = await cameras.snapshots(moment, moment, 3, 320, 240)
            assert cameras.buffer is not None
            frames = cameras.buffer.frames()
    interval = 1.0 / cameras.rate
    gaps = [b.at - a.at for a, b in itertools.pairwise(frames)]
    assert min(gaps) >= 0.9 * interval - 0.01
    assert shots.notes == []
    shown = moments(shots.images, moment)
    assert_close(shown[:1], [moment])
    assert None not in shown
    assert shown == sorted(shown) and len(set(shown)) == 3  # type: ignore[type-var]


async def test_snapshots_of_an_event_that_just_happened_wait_for_the_frames_after_it(
    service: Service,
) -> None:
    with http_camera("none") as camera:
        configure(service, source="http", url=camera.url("/snapshot.jpg"))
        async with running(service.camera) as cameras:
            await buffered(cameras, 0.5)
            moment = time.time()
            shots = await cameras.snapshots(moment, moment, 3, 320, 240)
    assert shots.notes == []
    shown = moments(shots.images, moment)
    assert_close(shown[:1], [moment])
    assert None not in shown and shown == sorted(shown)  # type: ignore[type-var]
    assert shown[2] is not None and shown[2] > moment + 0.3


async def test_a_call_that_just_ended_takes_the_frame_in_hand_when_it_is_within_a_frame_interval(
    service: Service,
) -> None:
    async with running(service.camera) as cameras:
        with http_camera("none") as camera:
            configure(service, source="http", url=camera.url("/snapshot.jpg"))
            await buffered(cameras, 1.0)
        # The camera is gone: a snapshot that waited for a newer frame would wait in vain until
        # the moment was too old for one (STALE_AFTER).
        newest = cameras.buffer.newest() if cameras.buffer else None
        assert newest is not None
        end = newest.at + 0.2  # within the buffer's interval (a quarter of a second)
        started = time.monotonic()
        shots = await cameras.snapshots(end - 1.0, end, 3, 320, 240)
        waited = time.monotonic() - started
    assert shots.notes == []
    assert waited < STALE_AFTER / 2
    assert_close(moments(shots.images, end), [end - 1.0, end - 0.5, end])


async def test_call_snapshots_from_an_rtsp_camera_show_the_moments_of_the_call(
    service: Service,
) -> None:
    with rtsp_camera() as camera:
        configure(service, source="rtsp", url=camera.url, username=USER, password=PASSWORD)
        async with running(service.camera) as cameras:
            await buffered(cameras, 1.5)
            end = time.time()
            start = end - 1.5
            shots = await cameras.snapshots(start, end, 4, 320, 240)
            status = cameras.status()
    assert shots.notes == []
    assert_close(moments(shots.images, end), [start, start + 0.5, start + 1.0, end])
    assert status.where == camera.url and status.state == "receiving"


async def test_a_camera_stopped_mid_call_gives_its_last_pictures_then_na_on_time(
    service: Service,
) -> None:
    with http_camera("digest") as camera:
        use_snapshot_url(service, camera)
        async with running(service.camera) as cameras:
            await buffered(cameras, 1.0)
            ringing = time.time() - 1.0
            camera.stop()
            stopped = time.time()
            await asyncio.sleep(STALE_AFTER + 0.5)
            ended = time.time()
            asked = time.monotonic()
            shots = await cameras.snapshots(ringing, ended, 3, 320, 240)
            took = time.monotonic() - asked
    assert took < ON_TIME
    assert shots.notes == [CAMERA_DID_NOT_ANSWER]
    shown = moments(shots.images, ringing)
    assert_close(shown[:1], [ringing])
    assert shown[2] is None
    assert shown[1] is None or shown[1] <= stopped


async def test_a_camera_that_never_answers_gives_na_on_time(service: Service) -> None:
    with silent_camera() as address:
        configure(service, source="http", url=f"http://{address}/snapshot.jpg")
        async with running(service.camera) as cameras:
            now = time.time()
            asked = time.monotonic()
            shots = await cameras.snapshots(now - 1.0, now, 2, 320, 240)
            took = time.monotonic() - asked
    assert took < ON_TIME
    assert shots.notes == [CAMERA_DID_NOT_ANSWER]
    assert moments(shots.images, now) == [None, None]


async def test_a_camera_sending_garbage_instead_of_jpeg_gives_na_on_time(
    service: Service,
) -> None:
    with http_camera("none") as camera:
        camera.garbage = True
        configure(service, source="http", url=camera.url("/snapshot.jpg"))
        async with running(service.camera) as cameras:
            await until(lambda: cameras.status().state == "failing")
            now = time.time()
            asked = time.monotonic()
            shots = await cameras.snapshots(now, now, 1, 320, 240)
            took = time.monotonic() - asked
            status = cameras.status()
    assert took < ON_TIME
    assert shots.notes == [CAMERA_DID_NOT_ANSWER]
    assert moments(shots.images, now) == [None]
    assert status.error is not None and "no JPEG pictures" in status.error


async def test_the_camera_reconnects_when_it_comes_back(service: Service) -> None:
    with http_camera("none") as camera:
        port = camera.port
        configure(service, source="http", url=camera.url("/snapshot.jpg"))
        async with running(service.camera) as cameras:
            await buffered(cameras, 0.25)
            camera.stop()
            await until(lambda: cameras.status().state == "failing")
            with http_camera("none", port=port):
                await until(lambda: cameras.status().state == "receiving")
                now = time.time()
                shots = await cameras.snapshots(now, now, 1, 320, 240)
    assert shots.notes == []
    assert_close(moments(shots.images, now), [now])


async def test_changed_camera_settings_switch_cameras_and_none_stops_capturing(
    service: Service,
) -> None:
    with http_camera("none") as first, http_camera("none", shift=1000.0) as second:
        configure(service, source="http", url=first.url("/snapshot.jpg"))
        async with running(service.camera) as cameras:
            await buffered(cameras, 0.25)
            configure(service, source="mjpeg", url=second.url("/stream.mjpg"))
            now = time.time()
            shots = await cameras.snapshots(now, now, 1, 320, 240)
            assert_close(moments(shots.images, now + 1000), [now + 1000])

            configure(service, source="none")
            await until(lambda: cameras.status().state == "off")
            asked_first, asked_second = first.requests, second.requests
            await asyncio.sleep(0.6)
            assert (first.requests, second.requests) == (asked_first, asked_second)
            none = await cameras.snapshots(now, now, 2, 160, 120)
    assert none.notes == []  # no camera: N/A is the answer, not a failure
    assert moments(none.images, now) == [None, None]


async def test_without_the_background_capture_a_snapshot_connects_just_for_itself(
    service: Service,
) -> None:
    with http_camera("digest") as camera:
        use_snapshot_url(service, camera)
        now = time.time()
        shots = await service.camera.snapshots(now, now, 1, 320, 240)
        served = camera.requests
        await asyncio.sleep(0.6)
        assert camera.requests == served  # and disconnects afterwards
    assert shots.notes == []
    assert_close(moments(shots.images, now), [now])


def url_with_password(url: str, password: str = PASSWORD) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{USER}:{quote(password, safe='')}@{rest}"


async def test_an_http_camera_with_its_password_in_the_url_gives_pictures_and_never_shows_it(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with http_camera("basic") as camera:
        configure(service, source="http", url=url_with_password(camera.url("/snapshot.jpg")))
        async with running(service.camera) as cameras:
            await buffered(cameras, 0.5)
            status = cameras.status()
    assert status.state == "receiving"
    assert status.where == camera.url("/snapshot.jpg")
    assert quote(PASSWORD, safe="") not in caplog.text and PASSWORD not in caplog.text


async def test_a_wrong_password_in_an_http_camera_url_is_neither_in_the_status_nor_the_log(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "n0t-the-pw"
    with http_camera("basic") as camera:
        configure(service, source="http", url=url_with_password(camera.url("/x.jpg"), wrong))
        async with running(service.camera) as cameras:
            await until(lambda: cameras.status().state == "failing")
            status = cameras.status()
    assert status.error is not None and "HTTP 401" in status.error
    assert wrong not in str(status) and wrong not in caplog.text


async def test_a_wrong_password_in_an_rtsp_camera_url_is_neither_in_the_status_nor_the_log(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "n0t-the-pw"
    with rtsp_camera() as camera:
        configure(service, source="rtsp", url=url_with_password(camera.url, wrong))
        async with running(service.camera) as cameras:
            await until(lambda: cameras.status().state == "failing")
            status = cameras.status()
    assert status.error is not None and status.where == camera.url
    assert wrong not in str(status) and wrong not in caplog.text
