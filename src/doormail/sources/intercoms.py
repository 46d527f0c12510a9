"""The 2N intercoms this process follows: every device whose `source` is a 2N intercom, each
under a lease (one process at a time follows a device; another takes it over within 30 s of
its holder's death). Looks at the devices again every RENEW_EVERY seconds, so a device added,
changed or deleted is followed, followed anew or left within that. Keeps each device's status
and, for a device without a camera of its own, the intercom's camera."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from doormail.camera import SnapshotSource
from doormail.devices.model import DeviceModel, Intercom2N
from doormail.events import Event
from doormail.metrics import Metrics
from doormail.sources.status import SourceStatus
from doormail.store.leases import RENEW_EVERY, Leases, SourceStates

if TYPE_CHECKING:  # httpx is loaded with the first intercom, not by an idle service
    from doormail.sources.intercom2n_camera import IntercomCamera

log = logging.getLogger("doormail.sources.2n")


def lease_name(device_id: str) -> str:
    return f"2n:{device_id}"


@dataclass
class _Followed:
    source: Intercom2N
    task: asyncio.Task[None]


class Intercoms:
    """Follows the 2N intercoms of the devices (`run`), and answers for their status."""

    def __init__(
        self,
        *,
        devices: Callable[[], Mapping[str, DeviceModel]],
        leases: Leases,
        states: SourceStates,
        submit: Callable[[Event], Awaitable[object]],
        knows: Callable[[Event], bool],
        metrics: Metrics | None = None,
        every: float = RENEW_EVERY,
    ) -> None:
        self._devices = devices
        self._leases = leases
        self._states = states
        self._submit = submit
        self._knows = knows
        self._metrics = metrics
        self._every = every
        self._followed: dict[str, _Followed] = {}
        self._statuses: dict[str, SourceStatus] = {}
        self._cameras: dict[str, IntercomCamera] = {}

    def status(self, device: DeviceModel) -> SourceStatus:
        """The device's status; `off` while another process follows it or it has no source."""
        status = self._statuses.get(device.id)
        if status is None or device.source is None:
            kind = None if device.source is None else device.source.kind
            return SourceStatus(device.id, kind)
        return status

    def camera_for(self, device: DeviceModel) -> SnapshotSource | None:
        """The intercom's camera for a 2N device, the same one its follower feeds."""
        if device.source is None:
            return None
        from doormail.sources.intercom2n_camera import IntercomCamera

        camera = self._cameras.get(device.id)
        if camera is None or camera.source != device.source:
            camera = self._cameras[device.id] = IntercomCamera(device.source)
        return camera

    async def run(self) -> None:
        try:
            while True:
                await self.look()
                await asyncio.sleep(self._every)
        finally:
            await self.stop()

    async def look(self) -> None:
        """Follow what the devices and the leases say now."""
        devices = await asyncio.to_thread(self._devices)
        wanted = {i: d.source for i, d in devices.items() if isinstance(d.source, Intercom2N)}
        for device_id in list(self._followed):
            followed = self._followed[device_id]
            if wanted.get(device_id) != followed.source or followed.task.done():
                await self._stop(device_id)
                if device_id not in wanted:  # deleted, or no longer a 2N intercom
                    await asyncio.to_thread(self._leases.release, lease_name(device_id))
                    self._statuses.pop(device_id, None)
        try:
            held = await asyncio.to_thread(self._leases.take_all, [lease_name(i) for i in wanted])
        except Exception:
            log.exception("2N: the leases cannot be renewed; following nothing until they can")
            held = set()
        for device_id, source in wanted.items():
            has = lease_name(device_id) in held
            if has and device_id not in self._followed:
                self._start(devices[device_id], source)
            elif not has and device_id in self._followed:
                await self._stop(device_id)

    def _start(self, device: DeviceModel, source: Intercom2N) -> None:
        from doormail.sources.intercom2n import Follower
        from doormail.sources.intercom2n_camera import IntercomCamera

        status = self._statuses[device.id] = SourceStatus(device.id, "2n", self._metrics)
        camera = self.camera_for(device)
        assert isinstance(camera, IntercomCamera)
        name = lease_name(device.id)
        follower = Follower(
            device,
            source,
            submit=self._submit,
            knows=self._knows,
            load_state=lambda: self._states.load(name),
            save_state=lambda state: self._states.save(name, state),
            status=status,
            camera=camera,
        )
        task = asyncio.create_task(follower.run(), name=f"2n-{device.id}")
        self._followed[device.id] = _Followed(source, task)

    async def _stop(self, device_id: str) -> None:
        followed = self._followed.pop(device_id)
        followed.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await followed.task

    async def stop(self) -> None:
        """Stop following every intercom and give their leases back."""
        ids = list(self._followed)
        for device_id in ids:
            await self._stop(device_id)
        with contextlib.suppress(Exception):
            for device_id in ids:
                await asyncio.to_thread(self._leases.release, lease_name(device_id))
