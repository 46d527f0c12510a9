"""Events end to end through the Postfix lab (plain port): each kind of mail arrives at the
right addresses with its subject, HTML and text parts and snapshots; an event repeated with the
same id arrives once."""

from __future__ import annotations

import email
import io
import time
import uuid
from email.message import Message
from email.policy import default
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import Lab

pytestmark = pytest.mark.integration


def address(name: str) -> str:
    """A unique address, so that other tests' mail in the shared maildir is never counted."""
    return f"{name}-{uuid.uuid4().hex[:12]}@example.com"


def arrived(lab: Lab, to: str, count: int = 1, timeout: float = 15.0) -> list[Message]:
    """The messages delivered to `to`, once at least `count` are there."""
    deadline = time.monotonic() + timeout
    while True:
        found = _delivered(lab, to)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _delivered(lab: Lab, to: str) -> list[Message]:
    messages = []
    for path in lab.delivered():
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # another test cleared it
            continue
        if to.encode() in data[:4096]:
            message = email.message_from_bytes(data, policy=default)
            if str(message.get("Delivered-To", "")).lower() == to.lower():
                messages.append(message)
    return messages


def configure(api: TestClient, lab: Lab, **tabs: Any) -> None:
    smtp = {
        "enabled": True,
        "server": lab.host,
        "port": lab.plain,
        "security": "none",
        "from": "door@example.org",
    }
    reply = api.patch("/api/config", json={"device": {"name": "Front door"}, "smtp": smtp, **tabs})
    assert reply.status_code == 200, reply.text


def post(api: TestClient, event: dict[str, Any]) -> dict[str, Any]:
    reply = api.post("/api/events", json=event)
    assert reply.status_code == 202, reply.text
    body: dict[str, Any] = reply.json()
    return body


def parts(message: Message) -> dict[str, Any]:
    """The text, the HTML and the attached images (their file names and sizes)."""
    text = message.get_body(("plain",))  # type: ignore[attr-defined]
    html = message.get_body(("html",))  # type: ignore[attr-defined]
    images = {
        part.get_filename(): Image.open(io.BytesIO(part.get_payload(decode=True))).size
        for part in message.walk()
        if part.get_content_type() == "image/jpeg"
    }
    return {"text": text.get_content(), "html": html.get_content(), "images": images}


def test_missed_call_mail_reaches_every_address_of_the_called_user(
    api: TestClient, lab: Lab
) -> None:
    home, work, desk = address("alice"), address("alice-work"), address("desk")
    configure(
        api,
        lab,
        email_on_call={
            "send": "missed",
            "default_to": desk,
            "subject": "Missed call for $User$ ($DialNumber$)",
            "body": "<p>Hello <b>$User$</b>, $DeviceName$ called $DialNumber$ at $DateTime$.</p>",
            "snapshots": {"attach": True, "count": 2, "resolution": "320x240"},
        },
    )
    user = {
        "id": "u-alice",
        "name": "Alice <Novak>",
        "email": f"{home}, {work}",
        "numbers": ["101"],
    }
    assert api.post("/api/users", json=user).status_code == 201
    reply = post(
        api,
        {
            "type": "call.ended",
            "called": "101",
            "answered": False,
            "at": "2025-03-14T09:26:53+00:00",
        },
    )
    assert sorted(mail["to"] for mail in reply["emails"]) == sorted([home, work])
    for to in (home, work):
        [message] = arrived(lab, to)
        assert message["Subject"] == "Missed call for Alice <Novak> (101)"
        assert message["To"] == to
        assert message["From"].addresses[0].addr_spec == "door@example.org"
        assert message["X-Doormail-Event"] == reply["event_id"]
        found = parts(message)
        assert "<b>Alice &lt;Novak&gt;</b>" in found["html"]
        assert "Front door called 101 at 2025-03-14 09:26:53" in found["html"]
        assert "Hello Alice <Novak>, Front door called 101" in found["text"]
        assert found["images"] == {"snapshot-1.jpg": (320, 240), "snapshot-2.jpg": (320, 240)}
    assert arrived(lab, desk, timeout=0) == []


def test_missed_call_to_user_without_email_reaches_default_to_once(
    api: TestClient, lab: Lab
) -> None:
    desk, night = address("desk"), address("night")
    configure(api, lab, email_on_call={"send": "any", "default_to": f"{desk}, {night}"})
    api.post("/api/users", json={"id": "u-carol", "name": "Carol", "numbers": ["103"]})
    reply = post(api, {"type": "call.ended", "called": ["103", "999"], "answered": True})
    assert sorted(mail["to"] for mail in reply["emails"]) == sorted([desk, night])
    for to in (desk, night):
        [message] = arrived(lab, to)
        assert message["Subject"] == "Call at Front door — 103, 999"
        assert parts(message)["images"] == {}


def test_access_with_invalid_card_reaches_default_to(api: TestClient, lab: Lab) -> None:
    security = address("security")
    configure(
        api,
        lab,
        email_on_access={
            "send": "denied",
            "default_to": security,
            "subject": "$AuthIdValid:Valid=OK,Invalid=DENIED$ $AuthIdType$ $AuthId$",
            "snapshots": {"attach": True, "count": 1, "resolution": "160x120"},
        },
    )
    reply = post(api, {"type": "access", "auth_type": "card", "auth_id": "00DEADBEEF"})
    assert [mail["to"] for mail in reply["emails"]] == [security]
    [message] = arrived(lab, security)
    assert message["Subject"] == "DENIED Card 00DEADBEEF"
    found = parts(message)
    assert "Access denied" in found["html"] and "Access denied" in found["text"]
    assert found["images"] == {"snapshot-1.jpg": (160, 120)}


def test_access_with_valid_card_reaches_the_user(api: TestClient, lab: Lab) -> None:
    bob = address("bob")
    configure(api, lab, email_on_access={"send": "all", "default_to": address("security")})
    api.post("/api/users", json={"id": "u-bob", "name": "Bob", "email": bob, "cards": ["12AB34CD"]})
    post(api, {"type": "access", "auth_type": "card", "auth_id": "0012AB34CD"})
    [message] = arrived(lab, bob)
    assert message["Subject"] == "Access granted at Front door — card 0012AB34CD"
    assert "User: Bob" in parts(message)["text"]


@pytest.mark.parametrize(
    ("event_type", "kind", "subject"),
    [
        ("sip.registration_lost", "sip_registration_lost", "SIP registration lost at Front door"),
        ("device.rebooted", "device_rebooted", "Device restarted at Front door"),
        ("tamper.activated", "tamper", "Tamper switch activated at Front door"),
    ],
)
def test_device_event_reaches_the_send_to_email_address(
    api: TestClient, lab: Lab, event_type: str, kind: str, subject: str
) -> None:
    admin = address("admin")
    configure(
        api,
        lab,
        email_on_event={
            "to": admin,
            kind: {"enabled": True},
            "snapshots": {"attach": True, "count": 1, "resolution": "176x144"},
        },
    )
    post(api, {"type": event_type})
    [message] = arrived(lab, admin)
    assert message["Subject"] == subject
    assert parts(message)["images"] == {"snapshot-1.jpg": (176, 144)}


def test_an_event_repeated_with_the_same_id_arrives_once(api: TestClient, lab: Lab) -> None:
    admin = address("admin")
    configure(api, lab, email_on_event={"to": admin, "tamper": {"enabled": True}})
    event = {"type": "tamper.activated", "id": f"tamper-{uuid.uuid4().hex}"}
    first = post(api, event)
    assert post(api, event) == first
    assert len(arrived(lab, admin)) == 1
    time.sleep(1.0)  # give a second copy, were there one, the time to arrive
    assert len(arrived(lab, admin, timeout=0)) == 1
    outbox = api.get("/api/outbox").json()["items"]
    assert [item["to"] for item in outbox if item["event_id"] == event["id"]] == [admin]
