"""A device's snapshots (SPEC 11) come from its own camera when it has one, captured into its
frame buffer while doormail runs so a call's pictures are spread over its ringing; a 2N device
without one takes the intercom's camera; otherwise the N/A image."""

from __future__ import annotations

import asyncio
import time

from doormail.app import Service
from doormail.camera.service import CameraService
from doormail.devices.model import parse_device
from doormail.sources.cameras import DeviceCameras
from doormail.sources.intercom2n_camera import IntercomCamera
from tests.camera.cameras import http_camera
from tests.camera.pattern import moment_of


async def test_a_devices_own_camera_is_captured_and_spread_over_the_ringing(
    service: Service,
) -> None:
    with http_camera(auth="none", fps=10) as camera:
        mjpeg = {"source": "mjpeg", "url": camera.url("/stream.mjpg")}
        service.devices.create(parse_device({"id": "gate", "camera": mjpeg}))
        cameras = DeviceCameras(service.settings.load, service.intercoms, service.devices.all)
        task = asyncio.create_task(cameras.run())
        try:
            await asyncio.sleep(1.5)
            device = service.devices.by_id("gate")
            assert device is not None
            source = cameras(device)
            assert isinstance(source, CameraService) and source.status().state == "receiving"
            now = time.time()
            pictures = await source.snapshots(now - 1.0, now, 3, 320, 240)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    moments = [moment_of(jpeg, now) for jpeg in pictures.images]
    for shown, wanted in zip(moments, [now - 1.0, now - 0.5, now], strict=True):
        assert shown is not None and abs(shown - wanted) <= 0.3, (moments, now)


def test_a_2n_device_without_a_camera_takes_the_intercoms(service: Service) -> None:
    source = {"kind": "2n", "url": "http://192.0.2.1"}
    service.devices.create(parse_device({"id": "door", "source": source}))
    service.devices.create(parse_device({"id": "plain"}))
    cameras = DeviceCameras(service.settings.load, service.intercoms, service.devices.all)
    door, plain = service.devices.by_id("door"), service.devices.by_id("plain")
    assert door is not None and plain is not None
    assert isinstance(cameras(door), IntercomCamera)
    assert isinstance(cameras(plain), CameraService)
    assert cameras(plain).status().source == "none"  # type: ignore[attr-defined]
