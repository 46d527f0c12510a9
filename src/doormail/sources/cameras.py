"""Which camera gives a device's snapshots (SPEC 11): the device's own `camera` when it has
one, otherwise its 2N intercom's camera, otherwise none (the N/A image)."""

from __future__ import annotations

from collections.abc import Callable

from doormail.camera import SnapshotSource
from doormail.camera.service import CameraService
from doormail.devices.model import DeviceModel, settings_for
from doormail.settings import Settings
from doormail.sources.intercoms import Intercoms


class DeviceCameras:
    """A device's snapshot source, built once per device camera."""

    def __init__(self, load_settings: Callable[[], Settings], intercoms: Intercoms) -> None:
        self._load_settings = load_settings
        self._intercoms = intercoms
        self._services: dict[str, tuple[DeviceModel, CameraService]] = {}

    def __call__(self, device: DeviceModel) -> SnapshotSource:
        if device.camera.source == "none":
            intercom = self._intercoms.camera_for(device)
            if intercom is not None:
                return intercom
        known = self._services.get(device.id)
        if known is not None and known[0] == device:
            return known[1]
        # Not run: each mail connects to the device's camera for its pictures.
        service = CameraService(lambda: settings_for(self._load_settings(), device))
        self._services[device.id] = (device, service)
        return service
