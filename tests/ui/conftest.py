"""The web UI under a real browser: Debian's Chromium driven by Playwright (never a downloaded
browser) against a real `doormail serve`; screenshots go to screenshots/latest/ (not tracked;
the README shows chosen copies kept in screenshots/)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.conftest import ADMIN_PASSWORD, RunningService, require_service, start_serve

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots" / "latest"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


# Package scope: Playwright's sync API runs an event loop in this thread until it stops, and
# asyncio tests collected after tests/ui could not start theirs meanwhile.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        require_service(f"Chromium ({CHROMIUM}; apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """One `doormail serve` per test module (starting one costs a second or two)."""
    running = start_serve(tmp_path_factory.mktemp("ui") / "data")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def api_client(served: RunningService) -> Iterator[httpx.Client]:
    with served.client() as client:
        yield client


def log_in(page: Page, url: str) -> None:
    page.goto(url + "/login")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(url + "/smtp")


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    made = browser.new_context(viewport=DESKTOP)
    made.set_default_timeout(10_000)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def page(context: BrowserContext, served: RunningService) -> Page:
    """A desktop-sized page, logged in as admin."""
    opened = context.new_page()
    log_in(opened, served.url)
    return opened


@pytest.fixture
def database() -> None:
    """The browser tests drive a `doormail serve` on SQLite: what they check is the pages; the
    store under them is run on both databases by the API and store tests."""
    return None
