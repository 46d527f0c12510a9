"""The default subject and body of every kind of mail read well on a phone: the subject's first
words say what happened and where, the body shows the picture first and then who and when, and
SpamAssassin (local tests) scores each at most 1.0. Each mail is made by posting its event to
the API, as a door station does, and read back from the outbox as the exact bytes sent."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import pytest
from fastapi.testclient import TestClient

from doormail.app import Service
from doormail.settings import apply_patch
from tests.spamassassin import Score

AT = "2026-11-29T14:15:16+00:00"
LOCAL_TIME = "2026-11-29 15:15:16"  # in Europe/Prague
PICTURES = {"attach": True, "count": 1, "resolution": "640x480"}
ENABLED = {"enabled": True}
CONFIG: dict[str, Any] = {
    "device": {"name": "Front Door", "timezone": "Europe/Prague"},
    "email_on_call": {"snapshots": PICTURES},
    "email_on_access": {"snapshots": PICTURES},
    "email_on_event": {
        "to": "caretaker@example.com",
        "snapshots": PICTURES,
        "sip_registration_lost": ENABLED,
        "device_rebooted": ENABLED,
        "tamper": ENABLED,
    },
}

# Each kind of mail: the event that causes it, the subject it gets, and what its body says.
KINDS: dict[str, tuple[dict[str, Any], str, str]] = {
    "call": (
        {"type": "call.ended", "called": "101", "answered": False},
        "Missed call at Front Door — 101 Alice",
        "Missed call",
    ),
    "access": (
        {"type": "access", "auth_type": "card", "auth_id": "DEADBEEF01"},
        "Access denied at Front Door — card DEADBEEF01",
        "Access denied",
    ),
    "sip_registration_lost": (
        {"type": "sip.registration_lost"},
        "SIP registration lost at Front Door",
        "SIP registration lost",
    ),
    "device_rebooted": (
        {"type": "device.rebooted"},
        "Device restarted at Front Door",
        "Device restarted",
    ),
    "tamper": (
        {"type": "tamper.activated"},
        "Tamper switch activated at Front Door",
        "Tamper switch activated",
    ),
}


def mail_of(api: TestClient, event: dict[str, Any]) -> bytes:
    """The exact bytes of the (first) mail `event` causes."""
    reply = api.post("/api/events", json={**event, "at": AT})
    assert reply.status_code == 202, reply.text
    emails = reply.json()["emails"]
    assert emails, reply.json()["reason"]
    return api.get(f"/api/outbox/{emails[0]['id']}/message").content


def parsed(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def part(message: EmailMessage, subtype: str) -> str:
    body = message.get_body((subtype,))
    assert body is not None
    return str(body.get_content())


@pytest.fixture
def defaults(configured: Service, camera: object) -> Service:
    """The service with every kind of mail on, one picture each, and the default templates."""
    configured.settings.save(apply_patch(configured.settings.load(), CONFIG))
    return configured


@pytest.mark.parametrize("kind", KINDS)
def test_the_default_mail_says_what_happened_where_and_when(
    defaults: Service, api: TestClient, kind: str
) -> None:
    event, subject, what = KINDS[kind]
    message = parsed(mail_of(api, event))
    assert message["Subject"] == subject
    text = part(message, "plain")
    assert what in text and "Front Door" in text and LOCAL_TIME in text
    assert "1 picture is attached: snapshot-1.jpg." in text
    html = part(message, "html")
    html = html[html.index("<body") :]
    # The picture leads, then what happened, then when.
    assert html.index('src="cid:') < html.index(what) < html.rindex(LOCAL_TIME)


def test_an_answered_call_says_so(defaults: Service, api: TestClient) -> None:
    defaults.settings.save(
        apply_patch(defaults.settings.load(), {"email_on_call": {"send": "any"}})
    )
    event = {"type": "call.ended", "called": "101", "answered": True}
    message = parsed(mail_of(api, event))
    assert message["Subject"] == "Call at Front Door — 101 Alice"
    assert "Answered call" in part(message, "plain")


@pytest.mark.parametrize("kind", KINDS)
def test_the_default_mail_scores_at_most_one_in_spamassassin(
    defaults: Service,
    api: TestClient,
    kind: str,
    spamassassin: Callable[[bytes], Score],
    capsys: pytest.CaptureFixture[str],
) -> None:
    scored = spamassassin(mail_of(api, KINDS[kind][0]))
    with capsys.disabled():
        print(f"\nSpamAssassin score  {kind:<22} {scored.line()}")
    assert scored.total <= 1.0, scored.report
