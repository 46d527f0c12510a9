"""Apply & Test's rough edges in the browser, against the Postfix lab: the implicit-TLS port
under STARTTLS (and the reverse) is named within 5 s with one hint in the UI's words."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import Lab, RunningService


@pytest.mark.parametrize(
    ("port_of", "security", "hint"),
    [
        (lambda lab: lab.tls, "starttls", "speaks implicit TLS: set Security to “Implicit TLS”"),
        (lambda lab: lab.plain, "tls", "speaks plain SMTP: set Security to “STARTTLS”"),
    ],
)
def test_a_port_under_the_wrong_security_is_named_within_5_s_with_one_hint(
    page: Page, served: RunningService, lab: Lab, port_of: object, security: str, hint: str
) -> None:
    port = port_of(lab)  # type: ignore[operator]
    page.goto(served.url + "/smtp")
    page.get_by_label("Server Address").fill(lab.host)
    page.get_by_label("Server Port").fill(str(port))
    page.get_by_label("Security").select_option(security)
    page.get_by_label("From Address").fill("door@example.org")
    page.get_by_label("Test e-mail address").fill("installer@example.com")
    started = time.monotonic()
    page.get_by_role("button", name="Apply & Test").click()
    expect(page.locator("[data-test-state]")).to_have_text("failed", timeout=5_000)
    assert time.monotonic() - started < 5
    hints = page.locator("[data-test-log] li.hint")
    expect(hints).to_have_count(1)
    expect(hints).to_contain_text(f"port {port} {hint}")
    assert "smtp." not in page.locator("[data-test-log]").inner_text()
