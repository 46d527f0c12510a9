"""The mail a resident opens, as a phone shows it: a missed call's message, delivered through the
Postfix lab with two pictures from an HTTP camera, has its HTML rendered in Chromium at phone
width with its `cid:` parts resolved, as a mail app does. The pictures come first and load, none
is wider than the screen, each has alt text saying when it was taken, and the page reads in a
dark colour scheme too. Screenshots: screenshots/latest/mail-missed-call-phone{,-dark}.png."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.camera.cameras import PASSWORD, USER, http_camera
from tests.conftest import Lab, RunningService
from tests.integration.test_camera_serve import wait_receiving
from tests.ui.conftest import PHONE, SCREENSHOTS


def with_parts_resolved(message: EmailMessage) -> str:
    """The message's HTML with each `cid:` reference replaced by its part's bytes, as a mail
    app shows it."""
    html_part = message.get_body(("html",))
    assert html_part is not None
    html = str(html_part.get_content())
    for part in message.walk():
        content_id = part["Content-ID"]
        if content_id is None:
            continue
        data = part.get_payload(decode=True)
        assert isinstance(data, bytes)
        uri = f"data:{part.get_content_type()};base64,{base64.b64encode(data).decode()}"
        html = html.replace(f"cid:{str(content_id).strip('<>')}", uri)
    assert "cid:" not in html, "a picture the HTML refers to is not in the message"
    return html


def delivered_missed_call(client: httpx.Client, lab: Lab) -> EmailMessage:
    """Ring for a second and a half, end unanswered; the mail as the lab's mailbox got it."""
    resident = f"alice-{uuid.uuid4().hex[:12]}@example.com"
    user = {"name": "Alice Novák", "email": resident, "numbers": ["101"]}
    assert client.post("/api/users", json=user).status_code == 201
    call = uuid.uuid4().hex
    ringing = {"type": "call.ringing", "call_id": call, "called": "101"}
    assert client.post("/api/events", json=ringing).status_code == 202
    time.sleep(1.5)
    ended = {**ringing, "type": "call.ended", "answered": False}
    assert client.post("/api/events", json=ended).status_code == 202
    return lab.mail_to(resident, timeout=20)


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=PHONE, device_scale_factor=2)
    try:
        yield context.new_page()
    finally:
        context.close()


def test_a_missed_calls_mail_shows_its_pictures_first_at_phone_width(
    served: RunningService, lab: Lab, phone: Page
) -> None:
    with http_camera("digest") as camera, served.client() as client:
        config = {
            "device": {"name": "Front Door", "timezone": "Europe/Prague"},
            "smtp": {
                "enabled": True,
                "server": lab.host,
                "port": lab.plain,
                "security": "none",
                "from": "door@example.org",
            },
            "camera": {
                "source": "http",
                "url": camera.url("/snapshot.jpg"),
                "username": USER,
                "password": PASSWORD,
            },
            "email_on_call": {
                "send": "missed",
                "snapshots": {"attach": True, "count": 2, "resolution": "640x480"},
            },
        }
        assert client.patch("/api/config", json=config).status_code == 200
        wait_receiving(client)
        message = delivered_missed_call(client, lab)

    assert str(message["Subject"]) == "Missed call at Front Door — 101 Alice Novák"
    phone.set_content(with_parts_resolved(message))
    pictures = phone.locator("img")
    assert pictures.count() == 2
    shown = phone.evaluate(
        """() => [...document.images].map(img => ({
            loaded: img.complete && img.naturalWidth === 640,
            right: img.getBoundingClientRect().right,
            top: img.getBoundingClientRect().top,
            alt: img.alt}))"""
    )
    assert all(picture["loaded"] for picture in shown), shown
    assert all(picture["right"] <= PHONE["width"] for picture in shown), shown
    assert all("taken at 20" in picture["alt"] for picture in shown), shown
    headline = phone.get_by_text("Missed call", exact=True).bounding_box()
    assert headline is not None and shown[0]["top"] < headline["y"]  # the picture first
    width = phone.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], "the page scrolls sideways on a phone"

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    phone.screenshot(path=SCREENSHOTS / "mail-missed-call-phone.png", full_page=True)
    phone.emulate_media(color_scheme="dark")
    scheme = phone.evaluate("() => getComputedStyle(document.documentElement).colorScheme")
    assert "dark" in scheme
    phone.screenshot(path=SCREENSHOTS / "mail-missed-call-phone-dark.png", full_page=True)
