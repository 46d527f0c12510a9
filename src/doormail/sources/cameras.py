"""Which camera gives a device's snapshots (SPEC 11): the device's own `camera` when it has one
(captured into its frame buffer while doormail runs, as the Camera tab's camera is, so a call's
pictures can be spread over its ringing), otherwise its 2N intercom's camera, otherwise none
(the N/A image)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from doormail.camera import SnapshotSource
from doormail.camera.service import CameraService
from doormail.devices.model import DeviceModel, settings_for
from doormail.settings import Settings
from doormail.sources.intercoms import Intercoms

# How often the devices are looked at for a camera added, changed or removed.
LOOK_EVERY = 5.0


@dataclass
class _Running:
    device: DeviceModel
    service: CameraService
    task: asyncio.Task[None] | None = None


class DeviceCameras:
    """A device's snapshot source; `run` captures from every device's own camera."""

    def __init__(
        self,
        load_settings: Callable[[], Settings],
        intercoms: Intercoms,
        devices: Callable[[], Mapping[str, DeviceModel]],
    ) -> None:
        self._load_settings = load_settings
        self._intercoms = intercoms
        self._devices = devices
        self._cameras: dict[str, _Running] = {}

    def __call__(self, device: DeviceModel) -> SnapshotSource:
        if device.camera.source == "none":
            intercom = self._intercoms.camera_for(device)
            if intercom is not None:
                return intercom
        known = self._cameras.get(device.id)
        if known is not None and known.device == device:
            return known.service
        # Not captured yet (just added, or a command-line tool): each mail connects for itself.
        running = _Running(device, self._service(device))
        self._cameras[device.id] = running
        return running.service

    def _service(self, device: DeviceModel) -> CameraService:
        return CameraService(lambda: settings_for(self._load_settings(), device))

    async def run(self) -> None:
        try:
            while True:
                await self.look()
                await asyncio.sleep(LOOK_EVERY)
        finally:
            for device_id in list(self._cameras):
                await self._stop(device_id)

    async def look(self) -> None:
        """Capture from each device's own camera, as the devices say now."""
        devices = await asyncio.to_thread(self._devices)
        for device_id, running in list(self._cameras.items()):
            if devices.get(device_id) != running.device:
                await self._stop(device_id)
        for device_id, device in devices.items():
            if device.camera.source == "none":
                continue
            known = self._cameras.get(device_id)
            running = known or _Running(device, self._service(device))
            self._cameras[device_id] = running
            if running.task is None:
                running.task = asyncio.create_task(
                    running.service.run(), name=f"camera-{device_id}"
                )

    async def _stop(self, device_id: str) -> None:
        running = self._cameras.pop(device_id)
        if running.task is not None:
            running.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running.task
