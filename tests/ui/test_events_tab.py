"""The Events tab in Chromium: an event that made no mail shows why, as it arrives, without a
reload; a resident's address finds the event that mailed it (delivered through the Postfix
lab) and the one that did not, with the reason; and the page stays free of axe-core WCAG 2 A/AA
violations at desktop and phone width."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import Lab, RunningService
from tests.ui.conftest import DESKTOP, PHONE, SCREENSHOTS, log_in
from tests.ui.test_accessibility import AXE, violations

ANSWERED_REASON = "email_on_call.send is missed and the call was answered"


def configure(client: httpx.Client, smtp: dict[str, object]) -> None:
    config = {
        "device": {"name": "Front Door"},
        "smtp": {"enabled": True, "from": "door@example.org", **smtp},
        "email_on_call": {"send": "missed", "default_to": ""},
    }
    reply = client.patch("/api/config", json=config)
    assert reply.status_code == 200, reply.text


def post(client: httpx.Client, event: dict[str, object]) -> dict[str, object]:
    reply = client.post("/api/events", json=event)
    assert reply.status_code == 202, reply.text
    answer: dict[str, object] = reply.json()
    return answer


def test_a_missed_call_with_no_recipient_shows_the_reason_as_it_arrives(
    page: Page, served: RunningService, api_client: httpx.Client
) -> None:
    configure(api_client, {"server": "127.0.0.1", "port": 9})
    page.goto(served.url + "/events")
    expect(page.get_by_role("heading", name="Events")).to_be_visible()
    answer = post(api_client, {"type": "call.ended", "called": "999", "answered": False})
    assert answer["reason"] == "no recipient"
    # No reload: the page follows the events as they arrive.
    row = page.locator(f'[data-event-id="{answer["event_id"]}"]')
    expect(row).to_contain_text("no recipient")
    expect(row).to_contain_text("no mail")
    expect(page.locator("#events-news")).to_have_text("New events arrived.")

    page.get_by_label("No mail only").check()
    page.get_by_role("button", name="Show").click()
    expect(page.locator(f'[data-event-id="{answer["event_id"]}"]')).to_be_visible()
    expect(page.locator('[data-mailed="true"]')).to_have_count(0)


@pytest.fixture
def checked_page(browser: Browser, served: RunningService) -> Iterator[Page]:
    """A logged-in page that axe-core can be loaded into (the pages' CSP allows no inline
    script, so this one browser context sets it aside)."""
    context = browser.new_context(viewport=DESKTOP, bypass_csp=True)
    context.set_default_timeout(10_000)
    try:
        opened = context.new_page()
        log_in(opened, served.url)
        yield opened
    finally:
        context.close()


def test_an_address_finds_a_delivered_and_a_refused_event(
    checked_page: Page, served: RunningService, api_client: httpx.Client, lab: Lab
) -> None:
    page = checked_page
    resident = f"alice-{uuid.uuid4().hex[:12]}@example.com"
    configure(api_client, {"server": lab.host, "port": lab.plain, "security": "none"})
    user = {
        "id": f"u-{uuid.uuid4().hex[:8]}",
        "name": "Alice",
        "email": resident,
        "numbers": ["201"],
    }
    assert api_client.post("/api/users", json=user).status_code == 201
    delivered = post(api_client, {"type": "call.ended", "called": "201", "answered": False})
    refused = post(api_client, {"type": "call.ended", "called": "201", "answered": True})
    [mail] = delivered["emails"]  # type: ignore[misc]
    deadline = time.monotonic() + 20
    while api_client.get(f"/api/outbox/{mail['id']}").json()["status"] != "sent":
        assert time.monotonic() < deadline, "the mail was not delivered through the lab"
        time.sleep(0.2)

    page.goto(served.url + "/events")
    page.get_by_label("Address").fill(resident)
    page.get_by_role("button", name="Show").click()
    rows = page.locator("[data-event-id]")
    expect(rows).to_have_count(2)
    mailed = page.locator(f'[data-event-id="{delivered["event_id"]}"]')
    expect(mailed).to_contain_text("mailed")
    expect(mailed.locator(".status-sent").first).to_be_visible()
    expect(mailed.get_by_role("link", name=resident)).to_be_visible()
    not_mailed = page.locator(f'[data-event-id="{refused["event_id"]}"]')
    expect(not_mailed).to_contain_text("not mailed")
    expect(not_mailed).to_contain_text(ANSWERED_REASON)

    axe = AXE.read_text(encoding="utf-8")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        assert violations(page, axe) == []
        page.screenshot(path=SCREENSHOTS / f"events-address-{name}.png", full_page=True)
