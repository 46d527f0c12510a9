"""Every kind of mail doormail sends, made through the HTTP API as a user's settings make them
(missed and answered call, valid and denied access of each type, each device event, send-email;
with a clock the test moves, the digest and the burst summary), with or without snapshots, each
to an address of its own so that it can be found again."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from doormail.app import Paths, Service, build_service
from doormail.applytest import apply_test_mail
from doormail.pipeline import snapshots as taking
from doormail.pipeline.prepare import prepare_message
from tests.conftest import ADMIN_PASSWORD

AUTH_TYPES = ("card", "bluetooth", "fingerprint")
IDENTIFIERS = {"card": "0012AB34CD", "bluetooth": "bt-4711", "fingerprint": "fp-0815"}
USER_FIELDS = {"card": "cards", "bluetooth": "bluetooth", "fingerprint": "fingerprints"}
DEVICE_EVENTS = {
    "sip_registration_lost": "sip.registration_lost",
    "device_rebooted": "device.rebooted",
    "tamper": "tamper.activated",
}
KINDS = (
    "missed_call",
    "answered_call",
    *(f"{v}_{t}" for t in AUTH_TYPES for v in ("valid", "denied")),
    *DEVICE_EVENTS,
    "send_email",
)


@dataclass(frozen=True)
class Made:
    """One mail made: which kind, to whom, and its outbox entry."""

    kind: str
    to: str
    outbox_id: str


class Clock:
    """Now, as the test says: a few seconds into a coming hour, moved by hand (build the
    service with `clock=`)."""

    HOUR = 3600.0

    def __init__(self) -> None:
        self.now = math.floor(time.time() / self.HOUR) * self.HOUR + 2 * self.HOUR + 10

    def __call__(self) -> float:
        return self.now

    def to_next_hour(self) -> None:
        self.now = math.floor(self.now / self.HOUR) * self.HOUR + self.HOUR + 1


def address(name: str) -> str:
    return f"{name.replace('_', '-')}-{uuid.uuid4().hex[:10]}@example.com"


def make_every_kind(api: TestClient, *, snapshots: bool) -> list[Made]:
    """One mail of each of KINDS (SMTP must be enabled); returns them in KINDS order."""
    pictures = {"attach": snapshots, "count": 1, "resolution": "640x480"}
    return [_make(api, kind, address(kind), pictures) for kind in KINDS]


def _make(api: TestClient, kind: str, to: str, pictures: dict[str, Any]) -> Made:
    if kind.endswith("_call"):
        _patch(api, {"email_on_call": {"send": "any", "default_to": to, "snapshots": pictures}})
        answered = kind == "answered_call"
        reply = _post(
            api, "/api/events", {"type": "call.ended", "called": "999", "answered": answered}
        )
    elif kind.startswith(("valid_", "denied_")):
        reply = _access(api, kind, to, pictures)
    elif kind in DEVICE_EVENTS:
        tab = {"to": to, "snapshots": pictures, kind: {"enabled": True}}
        _patch(api, {"email_on_event": tab})
        reply = _post(api, "/api/events", {"type": DEVICE_EVENTS[kind]})
    else:
        count = pictures["count"] if pictures["attach"] else 0
        reply = _post(api, "/api/actions/send-email", {"to": to, "snapshots": count})
    [mail] = [m for m in reply["emails"] if m["to"] == to]
    return Made(kind, to, mail["id"])


def _access(api: TestClient, kind: str, to: str, pictures: dict[str, Any]) -> dict[str, Any]:
    valid, auth_type = kind.split("_", 1)
    identifier = f"{IDENTIFIERS[auth_type]}{uuid.uuid4().hex[:6]}"
    _patch(api, {"email_on_access": {"send": "all", "default_to": to, "snapshots": pictures}})
    if valid == "valid":
        user = {
            "id": f"u-{uuid.uuid4().hex[:8]}",
            "name": "Alice Novak",
            "email": to,
            USER_FIELDS[auth_type]: [identifier],
        }
        assert api.post("/api/users", json=user).status_code == 201
    event = {"type": "access", "auth_type": auth_type, "auth_id": identifier}
    return _post(api, "/api/events", event)


def _patch(api: TestClient, document: dict[str, Any]) -> None:
    reply = api.patch("/api/config", json=document)
    assert reply.status_code == 200, reply.text


def _post(api: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = api.post(path, json=body)
    assert reply.status_code == 202, reply.text
    result: dict[str, Any] = reply.json()
    return result


def clocked_service(data_dir: Path, clock: Clock) -> Service:
    """A service whose outbox and flood control take `clock` as now, admin's password set."""
    service = build_service(Paths.resolve(str(data_dir)), clock=clock)
    service.accounts.ensure_admin(ADMIN_PASSWORD)
    return service


def apply_and_test_bytes(service: Service, to: str) -> bytes:
    """The Apply & Test e-mail to `to` as it is built (one snapshot), unsigned."""
    settings = service.settings.load()
    at = datetime.now(UTC)
    mail = apply_test_mail(settings, to, at.timestamp())
    pictures = asyncio.run(taking.take(service.camera, [mail]))
    return prepare_message(mail, settings, pictures, event_id="test-0", at=at).data


def make_digest(api: TestClient, service: Service, clock: Clock, *, snapshots: bool) -> Made:
    """A digest of two held tamper mails (the cap is one an hour), made at the hour's end."""
    to = address("digest")
    pictures = {"attach": snapshots, "count": 1, "resolution": "640x480"}
    tab = {"to": to, "tamper": {"enabled": True}, "snapshots": pictures}
    _patch(api, {"email_on_event": tab, "limits": {"per_recipient_per_hour": 1}})
    for _ in range(3):
        _post(api, "/api/events", {"type": "tamper.activated"})
        clock.now += 60
    clock.to_next_hour()
    made = _made(service, to, "digest")
    _patch(api, {"limits": {"per_recipient_per_hour": 0}})
    return made


def make_burst_summary(api: TestClient, service: Service, clock: Clock, *, snapshots: bool) -> Made:
    """A burst summary of two denied cards (the burst is one), made a minute after the last."""
    to = address("burst")
    pictures = {"attach": snapshots, "count": 1, "resolution": "640x480"}
    tab = {"send": "denied", "default_to": to, "snapshots": pictures}
    _patch(api, {"email_on_access": tab, "limits": {"access_denied_burst": 1}})
    card = {"type": "access", "auth_type": "card", "auth_id": "00DEADBEEF", "device": "Gate"}
    for _ in range(3):
        _post(api, "/api/events", card)
        clock.now += 1
    clock.now += 61
    made = _made(service, to, "burst_summary")
    _patch(api, {"limits": {"access_denied_burst": 0}})
    return made


def _made(service: Service, to: str, kind: str) -> Made:
    service.digests.make_due()
    items = service.outbox.page(limit=500).items
    [item] = [i for i in items if i.to == to and i.kind == kind]
    return Made(kind, to, item.id)
