"""Warnings in the browser (SPEC section 2): settings that are valid but will not mail are shown
on the tab they concern right after saving, and Apply & Test shows them beside its result."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from playwright.sync_api import Page, expect

from tests.conftest import RunningService, free_port
from tests.scripted_smtp import Scripted
from tests.ui.conftest import SCREENSHOTS


@pytest.fixture
def smtp_port() -> Iterator[int]:
    controller = Controller(Scripted(), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


def test_ticking_tamper_with_no_address_is_saved_with_a_warning_on_the_tab(
    page: Page, served: RunningService
) -> None:
    page.goto(served.url + "/email-on-event")
    page.get_by_label("Send to E-Mail Address").fill("")
    page.get_by_label("Tamper Switch Activation").check()
    page.get_by_role("button", name="Apply", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Settings saved.")
    warning = page.locator('[data-config-warnings] [data-warning-for="email_on_event.to"]')
    expect(warning).to_have_text(
        "Send to E-Mail Address is empty: Tamper Switch Activation is ticked but makes no mail"
    )
    page.get_by_label("Send to E-Mail Address").fill("admin@example.com")
    page.get_by_role("button", name="Apply", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Settings saved.")
    expect(page.locator('[data-warning-for="email_on_event.to"]')).to_have_count(0)
    page.get_by_label("Tamper Switch Activation").uncheck()
    page.get_by_role("button", name="Apply", exact=True).click()


def test_apply_and_test_with_smtp_service_enabled_off_says_no_event_mail_will_go_out(
    page: Page, served: RunningService, smtp_port: int
) -> None:
    page.goto(served.url + "/smtp")
    page.get_by_label("SMTP Service Enabled").uncheck()
    page.get_by_label("Server Address").fill("127.0.0.1")
    page.get_by_label("Server Port").fill(str(smtp_port))
    page.get_by_label("Security").select_option("none")
    page.get_by_label("From Address").fill("door@example.org")
    page.get_by_label("Test e-mail address").fill("installer@example.com")
    page.get_by_role("button", name="Apply & Test").click()
    expect(page.locator("[data-test-state]")).to_have_text("sent", timeout=20_000)
    beside = page.locator('[data-test-warnings] [data-warning-for="smtp.enabled"]')
    expect(beside).to_have_text(
        "SMTP Service Enabled is off: no event mail will go out until it is ticked"
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "smtp-test-warning-desktop.png")
    # The SMTP tab itself says so too, once loaded again.
    page.goto(served.url + "/smtp")
    expect(page.locator('[data-config-warnings] [data-warning-for="smtp.enabled"]')).to_be_visible()
