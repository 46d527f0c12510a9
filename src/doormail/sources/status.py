"""What each event source is doing (SPEC 11): `connected`, `connecting`, `failing` or `off`,
since when, its last event and error, for `GET /api/devices/{id}/status`,
`GET /api/sources/mqtt/status`, the Devices tab and the `doormail_source_*` metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from doormail.metrics import Metrics

State = Literal["connected", "connecting", "failing", "off"]


@dataclass
class SourceStatus:
    """One source's status; `name` is the device id (or "mqtt")."""

    name: str
    source: str | None
    metrics: Metrics | None = None
    state: State = "off"
    since: float = field(default_factory=time.time)
    last_event_at: float | None = None
    events_received: int = 0
    last_error: dict[str, str] | None = None

    def moved(self, state: State) -> None:
        if state != self.state:
            self.state, self.since = state, time.time()
        if self.metrics is not None:
            self.metrics.source_up.labels(device=self.name).set(1 if state == "connected" else 0)
        if state == "connected":
            self.last_error = None

    def failed(self, stage: str, message: str, hint: str) -> None:
        self.last_error = {"stage": stage, "message": message, "hint": hint}
        self.moved("failing")

    def received(self, event_type: str, device: str | None = None) -> None:
        """One event taken; counted under `device` (an MQTT message's), else the source's."""
        self.last_event_at = time.time()
        self.events_received += 1
        if self.metrics is not None:
            labels = {"device": device or self.name, "event": event_type}
            self.metrics.source_events.labels(**labels).inc()

    def refused(self) -> None:
        """A message or log record that was not a valid event (doormail_source_rejected_total)."""
        if self.metrics is not None:
            self.metrics.source_rejected.labels(source=self.name).inc()

    def public(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "state": self.state,
            "since": _iso(self.since),
            "last_event_at": None if self.last_event_at is None else _iso(self.last_event_at),
            "events_received": self.events_received,
            "last_error": self.last_error,
        }


def _iso(at: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(at, UTC).isoformat()
