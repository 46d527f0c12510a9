"""Markup typed where text belongs is shown as text, never run: a user named
`<img src=x onerror=alert(1)>`, the same in every text setting of every tab (saved, or refused and
shown back at its field), in the subjects of the outbox, and in an SMTP server's reply shown
live by Apply & Test. A real browser listens for dialogs and console errors all the while; the
mail previews are sandboxed frames where a template's own HTML may stand but never runs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Dialog, Page, expect

from tests.conftest import RunningService, free_port

PAYLOAD = "<img src=x onerror=alert(1)>"
SETTINGS_TABS = ("smtp", "email-on-call", "email-on-access", "email-on-event", "camera", "device")
# Form controls that are not settings: the CSRF token and Apply & Test's address.
NOT_SETTINGS = ("csrf_token", "test_to")
TEXT_CONTROLS = (
    "form[method=post] input[name]:not([type]), form[method=post] input[name][type=text], "
    "form[method=post] input[name][type=email], form[method=post] input[name][type=url], "
    "form[method=post] textarea[name]"
)


class Watch:
    """Dialogs opened and console errors logged by a page, outside the sandboxed previews."""

    def __init__(self, page: Page) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("console", self._console)

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        where = message.location.get("url", "")
        # A mail preview (an <iframe sandbox srcdoc>) may hold the template's own HTML: its
        # image fails to load and its handler is blocked by the sandbox, as it must be.
        if where.startswith("about:srcdoc") or "sandboxed" in message.text:
            return
        # A refused form comes back as a 422 page, which Chromium reports as a failed load.
        if message.text.startswith("Failed to load resource"):
            return
        self.errors.append(f"{message.text} at {where}")

    def assert_nothing_ran(self, page: Page, where: str) -> None:
        assert not self.dialogs, f"{where}: a dialog opened: {self.dialogs}"
        assert not self.errors, f"{where}: console errors: {self.errors}"
        # The markup never became an element of the page itself.
        assert page.locator("img[src=x]").count() == 0, where


@pytest.fixture
def watch(page: Page) -> Watch:
    return Watch(page)


def test_a_user_named_with_markup_is_shown_as_text(
    page: Page, served: RunningService, api_client: httpx.Client, watch: Watch
) -> None:
    reply = api_client.post("/api/users", json={"id": "u-xss", "name": PAYLOAD, "numbers": ["1"]})
    assert reply.status_code == 201, reply.text
    page.goto(served.url + "/users?q=u-xss")
    expect(page.get_by_text(PAYLOAD, exact=True).first).to_be_visible()
    watch.assert_nothing_ran(page, "/users")
    page.goto(served.url + "/users/u-xss")
    expect(page.locator("input[name=name]")).to_have_value(PAYLOAD)
    watch.assert_nothing_ran(page, "/users/u-xss")


@pytest.mark.parametrize("tab", SETTINGS_TABS)
def test_markup_in_every_text_setting_is_shown_as_text(
    page: Page, served: RunningService, watch: Watch, tab: str
) -> None:
    page.goto(f"{served.url}/{tab}")
    names = [
        name
        for control in page.locator(TEXT_CONTROLS).all()
        if control.is_visible() and (name := control.get_attribute("name")) not in NOT_SETTINGS
    ]
    assert names, f"no text settings on /{tab}"
    for name in names:
        page.goto(f"{served.url}/{tab}")
        control = page.locator(f'[name="{name}"]')
        control.fill(PAYLOAD)
        page.locator("form[method=post] button.primary").first.click()
        page.wait_for_load_state("networkidle")
        # Saved and shown again, or refused and shown back at its field: as text either way.
        shown = page.locator(f'[name="{name}"]')
        expect(shown).to_have_value(PAYLOAD)
        watch.assert_nothing_ran(page, f"/{tab} {name}")
        page.reload()
        watch.assert_nothing_ran(page, f"/{tab} {name} reloaded")


def test_markup_in_a_subject_is_shown_as_text_in_the_outbox(
    page: Page, served: RunningService, api_client: httpx.Client, watch: Watch
) -> None:
    config = {
        "device": {"name": PAYLOAD},
        "smtp": {"enabled": False},
        "email_on_event": {"to": "resident@example.com", "tamper": {"enabled": True}},
    }
    # Sending is off: the mail waits in the outbox, its subject holding the device name.
    assert api_client.patch("/api/config", json=config).status_code == 200
    patch = {"smtp": {"enabled": True, "server": "127.0.0.1", "port": free_port()}}
    patch["smtp"] |= {"security": "none", "from": "door@example.org"}
    assert api_client.patch("/api/config", json=patch).status_code == 200
    reply = api_client.post("/api/events", json={"type": "tamper.activated"})
    [mail] = reply.json()["emails"]
    page.goto(served.url + "/outbox")
    expect(page.get_by_text(PAYLOAD).first).to_be_visible()
    watch.assert_nothing_ran(page, "/outbox")
    page.goto(f"{served.url}/outbox/{mail['id']}")
    expect(page.get_by_text(PAYLOAD).first).to_be_visible()
    watch.assert_nothing_ran(page, "/outbox/{id}")


@pytest.fixture
def markup_server() -> Iterator[int]:
    """An SMTP server that refuses at once with markup in its reply."""
    loop = asyncio.new_event_loop()
    port = free_port()

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"554 5.7.1 {PAYLOAD} no service\r\n".encode())
        await writer.drain()
        writer.close()

    started = asyncio.run_coroutine_threadsafe(
        asyncio.start_server(refuse, "127.0.0.1", port), loop
    )
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = started.result(5)
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_an_smtp_reply_with_markup_is_shown_as_text_in_apply_and_test(
    page: Page, served: RunningService, watch: Watch, markup_server: int
) -> None:
    page.goto(served.url + "/smtp")
    page.get_by_label("SMTP Service Enabled").check()
    page.get_by_label("Server Address").fill("127.0.0.1")
    page.get_by_label("Server Port").fill(str(markup_server))
    page.get_by_label("From Address").fill("door@example.org")
    page.locator("select[name='smtp.security']").select_option("none")
    page.locator("#f-test-to").fill("installer@example.com")
    page.locator("#apply-and-test").click()
    expect(page.get_by_text(PAYLOAD, exact=False).first).to_be_visible(timeout=20_000)
    watch.assert_nothing_ran(page, "Apply & Test")
