"""The settings tabs in a browser: the manual's labels, errors shown at the field that caused
them, secrets shown only as set / not set, the live preview, labels for every control, and
every tab usable (and photographed) at desktop and phone width."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.conftest import RunningService
from tests.ui.conftest import DESKTOP, PHONE, SCREENSHOTS, log_in

TABS = (
    ("smtp", "SMTP"),
    ("email-on-call", "E-Mail on Call"),
    ("email-on-access", "E-Mail on Access"),
    ("email-on-event", "E-Mail on Event"),
    ("camera", "Camera"),
    ("certificates", "Certificates"),
    ("users", "Users"),
    ("outbox", "Outbox"),
    ("device", "Device"),
)
SAMPLE_USERS = (
    {"id": "u-101", "name": "Alice Novak", "email": "alice@example.com", "numbers": ["101"]},
    {"id": "u-102", "name": "Bob Svoboda", "numbers": ["102"], "cards": ["0012AB34CD"]},
)


def test_an_invalid_server_port_is_shown_at_the_field(
    page: Page, served: RunningService, api_client: httpx.Client
) -> None:
    port = page.get_by_label("Server Port")
    port.fill("70000")
    page.get_by_role("button", name="Apply", exact=True).click()
    error = page.locator('[data-error-for="smtp.port"]')
    expect(error).to_be_visible()
    expect(error).to_contain_text("65535")
    expect(port).to_have_attribute("aria-invalid", "true")
    expect(port).to_have_value("70000")
    assert api_client.get("/api/config").json()["smtp"]["port"] == 25


def test_two_bad_fields_are_both_marked_at_once(
    page: Page, served: RunningService, api_client: httpx.Client
) -> None:
    page.get_by_label("Server Port").fill("70000")
    page.get_by_label("Deliver In").fill("5")
    page.get_by_role("button", name="Apply", exact=True).click()
    for field, text in (("smtp.port", "65535"), ("smtp.deliver_in", "60")):
        expect(page.locator(f'[data-error-for="{field}"]')).to_contain_text(text)
    expect(page.locator('[aria-invalid="true"]')).to_have_count(2)
    assert api_client.get("/api/config").json()["smtp"]["port"] == 25


def test_apply_and_test_marks_every_bad_field_at_once(page: Page) -> None:
    page.get_by_label("Server Port").fill("0")
    page.get_by_label("Deliver In").fill("5")
    page.get_by_label("Test e-mail address").fill("never-sent@example.com")
    page.get_by_role("button", name="Apply & Test").click()
    expect(page.locator('[data-error-for="smtp.port"]')).to_be_visible()
    expect(page.locator('[data-error-for="smtp.deliver_in"]')).to_be_visible()
    expect(page.locator('[aria-invalid="true"]')).to_have_count(2)
    expect(page.get_by_label("Server Port")).to_be_focused()


def test_a_required_from_address_is_shown_at_its_field(page: Page) -> None:
    page.get_by_label("SMTP Service Enabled").check()
    page.get_by_label("Server Address").fill("mail.example.com")
    page.get_by_label("From Address").fill("")
    page.get_by_role("button", name="Apply", exact=True).click()
    expect(page.locator('[data-error-for="smtp.from"]')).to_contain_text("required")
    expect(page.get_by_label("SMTP Service Enabled")).to_be_checked()


def test_the_manuals_options_for_email_on_call(page: Page, served: RunningService) -> None:
    page.goto(served.url + "/email-on-call")
    send = page.get_by_label("Send E-Mail to User at")
    options = send.locator("option").all_inner_texts()
    assert options == ["Do Not Send E-mail", "Any Outgoing Call", "Missed Outgoing Call"]
    for label in (
        "Default To",
        "Subject",
        "Body",
        "Attach Snapshots",
        "Number of Snapshots Attached",
        "Snapshot Resolution",
    ):
        expect(page.get_by_label(label, exact=True)).to_have_count(1)
    for placeholder in ("$User$", "$DateTime$", "$DialNumber$", "$DeviceName$"):
        expect(page.get_by_role("button", name=placeholder, exact=True)).to_be_visible()


def test_the_manuals_options_for_email_on_access_and_event(
    page: Page, served: RunningService
) -> None:
    page.goto(served.url + "/email-on-access")
    options = page.get_by_label("Send E-Mail at").locator("option").all_inner_texts()
    assert options == ["Do Not Send E-Mail", "All Accesses", "Denied Accesses"]
    for placeholder in ("$AuthId$", "$AuthIdType$", "$AuthIdValid$"):
        expect(page.get_by_role("button", name=placeholder, exact=True)).to_be_visible()
    page.goto(served.url + "/email-on-event")
    for label in (
        "Send to E-Mail Address",
        "SIP Registration Lost",
        "Device Rebooted",
        "Tamper Switch Activation",
        "Attach Camera Snapshots",
        "Count of Snapshots to Be Attached",
    ):
        expect(page.get_by_label(label, exact=True)).to_have_count(1)
    expect(page.get_by_label("E-Mail Body", exact=True)).to_have_count(3)


def test_a_saved_password_shows_only_as_set(
    page: Page, served: RunningService, api_client: httpx.Client
) -> None:
    secret = "pw-that-must-not-show-9f2c"
    page.get_by_label("Password", exact=True).fill(secret)
    page.get_by_role("button", name="Apply", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Settings saved.")
    password = page.get_by_label("Password", exact=True)
    expect(password).to_have_value("")
    expect(page.locator('[data-field="smtp.password"] [data-secret-state]')).to_have_text("set")
    assert secret not in page.content()
    assert api_client.get("/api/config").json()["smtp"]["password_set"] is True
    # Applying again with the field left empty keeps it.
    page.get_by_role("button", name="Apply", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Settings saved.")
    assert api_client.get("/api/config").json()["smtp"]["password_set"] is True


def test_the_preview_follows_the_subject_as_it_is_typed(page: Page, served: RunningService) -> None:
    page.goto(served.url + "/email-on-call")
    message = page.locator('.message[data-preview-kind="call"]')
    subject = message.get_by_label("Subject")
    subject.fill("Missed call to $DialNumber$ [$User$]")
    shown = message.locator("[data-preview-subject]")
    expect(shown).to_have_text(re.compile(r"^Missed call to \S+ \[.+\]$"))
    expect(shown).not_to_contain_text("$DialNumber$")
    body = message.get_by_label("Body", exact=True)
    body.fill("<p>Rang <b>$DialNumber$</b></p>")
    shown_body = message.frame_locator("[data-preview-body]").locator("body")
    expect(shown_body).to_have_text(re.compile(r"^\s*Rang [^$\s]+\s*$"))
    expect(shown_body.locator("b")).to_have_count(1)


def test_a_placeholder_button_inserts_at_the_cursor(page: Page, served: RunningService) -> None:
    page.goto(served.url + "/email-on-call")
    message = page.locator('.message[data-preview-kind="call"]')
    subject = message.get_by_label("Subject")
    subject.fill("Call at ")
    subject.press("End")
    message.get_by_role("button", name="$DateTime$", exact=True).click()
    expect(subject).to_have_value("Call at $DateTime$")


def test_every_control_has_a_label(page: Page, served: RunningService) -> None:
    unlabelled_script = """() => [...document.querySelectorAll('input, select, textarea')]
        .filter(e => e.type !== 'hidden' && e.labels.length === 0 && !e.getAttribute('aria-label'))
        .map(e => e.name || e.id)"""
    for slug, _title in TABS:
        page.goto(f"{served.url}/{slug}")
        assert page.evaluate(unlabelled_script) == [], slug


def test_the_tabs_are_reachable_by_keyboard(page: Page) -> None:
    page.keyboard.press("Tab")  # the skip link
    page.keyboard.press("Tab")  # log out
    page.keyboard.press("Tab")
    focused = page.evaluate("() => document.activeElement.textContent")
    assert focused == "SMTP"
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/email-on-call$"))


def settle(page: Page) -> None:
    """Wait for what the page's script fills in: the previews and the camera snapshot."""
    for preview in page.locator(".message").all():
        expect(preview.locator("[data-preview-subject]")).not_to_be_empty()
        expect(preview.frame_locator("[data-preview-body]").locator("body")).not_to_be_empty()
    if page.locator("#snapshot-image").count():
        expect(page.locator("#snapshot-image")).to_have_attribute("data-loaded", re.compile("."))


def photograph(page: Page, path: Path) -> None:
    """A whole-page screenshot. Chromium leaves sandboxed frames (the previews) blank in its
    full-page capture, so the window is made as tall as the page instead."""
    viewport = page.viewport_size
    assert viewport is not None
    height = page.evaluate("() => document.documentElement.scrollHeight")
    page.set_viewport_size({"width": viewport["width"], "height": height})
    try:
        settle(page)
        page.screenshot(path=path)
    finally:
        page.set_viewport_size(viewport)


def test_every_tab_at_desktop_and_phone_width(
    browser: Browser, served: RunningService, api_client: httpx.Client
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for user in SAMPLE_USERS:
        reply = api_client.post("/api/users", json=user)
        assert reply.status_code in (201, 409), reply.text
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        context = browser.new_context(viewport=viewport)
        try:
            page = context.new_page()
            log_in(page, served.url)
            for slug, title in TABS:
                page.goto(f"{served.url}/{slug}")
                expect(page.get_by_role("heading", level=1)).to_have_text(title)
                settle(page)
                overflow = page.evaluate(
                    "() => document.documentElement.scrollWidth - window.innerWidth"
                )
                assert overflow <= 0, f"{slug} is {overflow}px wider than a {name} screen"
                photograph(page, SCREENSHOTS / f"{slug}-{name}.png")
        finally:
            context.close()
