"""Every kind of mail doormail sends, made through the HTTP API as a user's settings make them
(missed and answered call, valid and denied access of each type, each device event, send-email),
with or without snapshots, each to an address of its own so that it can be found again."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

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
        reply = _post(api, "/api/events", {"type": "call.ended", "called": "999",
                                            "answered": answered})
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
        user = {"id": f"u-{uuid.uuid4().hex[:8]}", "name": "Alice Novak", "email": to,
                USER_FIELDS[auth_type]: [identifier]}
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
