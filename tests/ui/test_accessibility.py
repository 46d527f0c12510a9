"""Every page of the web UI is free of WCAG 2 A/AA violations as axe-core finds them, at desktop
and phone width: each tab of the navigation (new tabs are checked as soon as they are listed),
the login page, a user's page, an outbox message and a settings form showing its errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from doormail.web.ui_common import NAVIGATION
from tests.conftest import RunningService, require_service
from tests.ui.conftest import DESKTOP, PHONE, log_in
from tests.ui.test_settings_tabs import SAMPLE_USERS, settle

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.0, 2.1 and 2.2 at levels A and AA: what the pages promise.
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.is_file():
        require_service(f"axe-core ({AXE}; make test installs it with npm ci)")
    return AXE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def examples(served: RunningService) -> dict[str, str]:
    """A users list and an outbox entry, so that the tables and detail pages have rows."""
    with served.client() as client:
        for user in SAMPLE_USERS:
            reply = client.post("/api/users", json=user)
            assert reply.status_code in (201, 409), reply.text
        config = {"enabled": True, "server": "127.0.0.1", "port": 9, "from": "door@example.com"}
        assert client.patch("/api/config", json={"smtp": config}).status_code == 200
        queued = client.post("/api/actions/send-email", json={"to": "alice@example.com"})
        assert queued.status_code == 202, queued.text
        disabled = {"smtp": {"enabled": False}}
        assert client.patch("/api/config", json=disabled).status_code == 200
        # A DKIM key, so that the SMTP tab shows its record to publish.
        dkim = {"smtp": {"dkim": {"domain": "example.com", "selector": "door"}}}
        assert client.patch("/api/config", json=dkim).status_code == 200
        assert client.post("/api/dkim/key", json={"algorithm": "rsa"}).status_code == 200
        # a device whose intercom nobody answers: its row shows a failing source
        device = {"id": "gate", "source": {"kind": "2n", "url": "http://127.0.0.1:9"}}
        assert client.post("/api/devices", json=device).status_code in (201, 409)
    return {"user": SAMPLE_USERS[0]["id"], "mail": queued.json()["emails"][0]["id"]}


def violations(page: Page, axe_source: str) -> list[str]:
    """axe-core's WCAG 2 A/AA violations on the page as it is now, one line each."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=axe_source)
    found: list[dict[str, Any]] = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})"
        ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' '))})))",
        WCAG_TAGS,
    )
    return [f"{v['id']} ({v['impact']}): {v['help']} at {', '.join(v['nodes'])}" for v in found]


def pages(served: RunningService, examples: dict[str, str]) -> Iterator[tuple[str, str]]:
    for path, _title in NAVIGATION:
        yield path, served.url + path
    yield "new user", served.url + "/users/new"
    yield "user", f"{served.url}/users/{examples['user']}"
    yield "outbox message", f"{served.url}/outbox/{examples['mail']}"


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_every_page_has_no_wcag_violations(
    browser: Browser,
    served: RunningService,
    examples: dict[str, str],
    axe_source: str,
    viewport: dict[str, int],
) -> None:
    # The pages forbid inline script; axe is injected by the test, not served by doormail.
    context = browser.new_context(viewport=viewport, bypass_csp=True)
    try:
        page = context.new_page()
        page.goto(served.url + "/login")
        found = {"login": violations(page, axe_source)}
        log_in(page, served.url)
        for name, url in pages(served, examples):
            page.goto(url)
            settle(page)
            found[name] = violations(page, axe_source)
        page.goto(served.url + "/smtp")
        page.get_by_label("Server Port").fill("70000")
        page.get_by_role("button", name="Apply", exact=True).click()
        page.locator('[data-error-for="smtp.port"]').wait_for()
        found["smtp with an error"] = violations(page, axe_source)
    finally:
        context.close()
    assert {name: lines for name, lines in found.items() if lines} == {}


def test_the_checker_finds_a_violation(
    browser: Browser, served: RunningService, axe_source: str
) -> None:
    """The check above can fail: an image without alternative text is reported."""
    context = browser.new_context(viewport=DESKTOP, bypass_csp=True)
    try:
        page = context.new_page()
        page.goto(served.url + "/login")
        page.evaluate(
            "() => document.querySelector('main').appendChild(document.createElement('img'))"
            ".setAttribute('src', '/static/favicon.svg')"
        )
        assert any(line.startswith("image-alt") for line in violations(page, axe_source))
    finally:
        context.close()
