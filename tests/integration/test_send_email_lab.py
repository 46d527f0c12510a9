"""Sending e-mail on demand end to end through the Postfix lab (plain port): the Automation
action and the intercom form each put a mail with its snapshot into the lab's maildir."""

from __future__ import annotations

import io
import uuid
from email.message import EmailMessage

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import Lab

pytestmark = pytest.mark.integration


def unique_address(name: str) -> str:
    """An address no other test uses, so that only this test's mail in the maildir counts."""
    return f"{name}-{uuid.uuid4().hex[:12]}@example.com"


def use_lab(api: TestClient, lab: Lab) -> None:
    smtp = {
        "enabled": True,
        "server": lab.host,
        "port": lab.plain,
        "security": "none",
        "from": "door@example.org",
    }
    reply = api.patch("/api/config", json={"device": {"name": "Vchod Nádvoří"}, "smtp": smtp})
    assert reply.status_code == 200, reply.text


def images_of(message: EmailMessage) -> dict[str | None, tuple[int, int]]:
    return {
        part.get_filename(): Image.open(io.BytesIO(part.get_content())).size
        for part in message.iter_attachments()
        if part.get_content_type() == "image/jpeg"
    }


def test_send_email_action_arrives_with_its_snapshot(api: TestClient, lab: Lab) -> None:
    to = unique_address("guard")
    use_lab(api, lab)
    reply = api.post(
        "/api/actions/send-email",
        json={
            "to": to,
            "subject": "Zvonek: $DeviceName$",
            "body": '<p>Someone rang at <b>$DeviceName$</b>.<br><a href="https://door.example/">Open</a></p>',
        },
    )
    assert reply.status_code == 202, reply.text
    message = lab.mail_to(to, timeout=15)
    assert message["Subject"] == "Zvonek: Vchod Nádvoří"
    assert message["From"].addresses[0].display_name == "Vchod Nádvoří"
    assert message["X-Doormail-Event"] == reply.json()["event_id"]
    assert message["Auto-Submitted"] == "auto-generated"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert (
        text.get_content()
        .replace("\r\n", "\n")
        .startswith("Someone rang at Vchod Nádvoří.\nOpen (https://door.example/)\n")
    )
    assert "<b>Vchod Nádvoří</b>" in html.get_content()
    assert images_of(message) == {"snapshot-1.jpg": (640, 480)}


def test_intercom_form_mail_arrives_with_its_pictures(api: TestClient, lab: Lab) -> None:
    to = unique_address("resident")
    use_lab(api, lab)
    reply = api.get(
        "/api/email/send",
        params={
            "to": to,
            "subject": "Hello",
            "body": "Hello <i>there</i>",
            "pictureCount": "2",
            "width": "320",
            "height": "240",
        },
    )
    assert reply.json() == {"success": True}
    message = lab.mail_to(to, timeout=15)
    assert message["Subject"] == "Hello"
    assert images_of(message) == {"snapshot-1.jpg": (320, 240), "snapshot-2.jpg": (320, 240)}
