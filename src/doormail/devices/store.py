"""The `devices` table: each device's document, and a look-up by id that reads the table again
only when it changed (every event asks it, several processes may change it)."""

from __future__ import annotations

import json
import threading
import time

from sqlalchemy import Engine, delete, func, insert, select, update

from doormail.devices.model import DeviceModel
from doormail.store import tables
from doormail.store.engine import reading

_t = tables.devices
_VERSION = select(func.count(), func.max(_t.c.updated_at), func.sum(_t.c.updated_at))


class DuplicateDevice(ValueError):
    """A device with this id exists."""


class DeviceStore:
    """Create, read, replace and delete devices."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._cached: tuple[object, dict[str, DeviceModel]] = (None, {})

    def all(self) -> dict[str, DeviceModel]:
        """Every device by id (the same dict while the table is unchanged)."""
        with reading(self._engine) as connection:
            version = tuple(connection.execute(_VERSION).one())
            with self._lock:
                if self._cached[0] == version:
                    return self._cached[1]
            rows = connection.execute(select(_t.c.id, _t.c.document).order_by(_t.c.id)).all()
        devices = {row.id: DeviceModel.model_validate(json.loads(row.document)) for row in rows}
        with self._lock:
            self._cached = (version, devices)
        return devices

    def by_id(self, device_id: str) -> DeviceModel | None:
        return self.all().get(device_id)

    def create(self, device: DeviceModel) -> None:
        with self._engine.begin() as connection:
            exists = connection.execute(select(_t.c.id).where(_t.c.id == device.id)).first()
            if exists is not None:
                raise DuplicateDevice(f"a device with id {device.id!r} exists")
            connection.execute(insert(_t).values(**self._row(device)))

    def replace(self, device: DeviceModel) -> bool:
        with self._engine.begin() as connection:
            changed = connection.execute(
                update(_t).where(_t.c.id == device.id).values(**self._row(device))
            ).rowcount
        return bool(changed)

    def delete(self, device_id: str) -> bool:
        with self._engine.begin() as connection:
            return bool(connection.execute(delete(_t).where(_t.c.id == device_id)).rowcount)

    @staticmethod
    def _row(device: DeviceModel) -> dict[str, object]:
        # A strictly later time on every write, so the look-up sees each change.
        return {
            "id": device.id,
            "document": json.dumps(device.document()),
            "updated_at": time.time(),
        }
