"""The layout an installer meets first, at phone width: a styled login whose fields are as
wide as the form, the tab bar as one row that scrolls (the current tab in view), and a camera
that fails shown as an error."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.conftest import RunningService, free_port
from tests.ui.conftest import PHONE, SCREENSHOTS, log_in


@pytest.fixture
def phone(browser: Browser) -> Iterator[BrowserContext]:
    made = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    made.set_default_timeout(10_000)
    try:
        yield made
    finally:
        made.close()


def box(page: Page, selector: str) -> dict[str, float]:
    found = page.locator(selector).bounding_box()
    assert found is not None, selector
    return dict(found)


def test_the_login_at_phone_width_has_full_width_styled_fields(
    phone: BrowserContext, served: RunningService
) -> None:
    page = phone.new_page()
    page.goto(served.url + "/login")
    user, password = box(page, "#username"), box(page, "#password")
    assert user["width"] == password["width"] > PHONE["width"] * 0.6
    assert user["height"] == password["height"] >= 32
    border = page.eval_on_selector("#username", "el => getComputedStyle(el).borderTopWidth")
    assert border == "1px"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "login-phone.png")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong user name or password.")


def test_the_tab_bar_at_phone_width_is_one_row_that_scrolls_to_the_current_tab(
    phone: BrowserContext, served: RunningService
) -> None:
    page = phone.new_page()
    log_in(page, served.url)
    tabs = page.locator("nav.tabs a")
    tops = {round(tabs.nth(i).bounding_box()["y"]) for i in range(tabs.count())}  # type: ignore[index]
    assert len(tops) == 1, tops  # one row
    assert box(page, "nav.tabs")["height"] < 60
    scrolls = page.eval_on_selector("nav.tabs ul", "el => el.scrollWidth > el.clientWidth")
    assert scrolls
    page.goto(served.url + "/device")  # the last tab, beyond the phone's width
    current = box(page, 'nav.tabs a[aria-current="page"]')
    assert current["x"] >= 0 and current["x"] + current["width"] <= PHONE["width"]
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=SCREENSHOTS / "tabs-phone.png")


def test_a_failing_camera_is_shown_as_an_error(
    phone: BrowserContext, served: RunningService, api_client: httpx.Client
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/snapshot.jpg"
    reply = api_client.patch("/api/config", json={"camera": {"source": "http", "url": dead}})
    assert reply.status_code == 200, reply.text
    try:
        page = phone.new_page()
        log_in(page, served.url)
        page.goto(served.url + "/camera")
        status = page.locator("#camera-status")
        expect(status).to_have_class("camera-failing", timeout=15_000)
        expect(status).to_have_attribute("role", "alert")
        expect(status).to_contain_text("Camera failing")
        colour = status.evaluate("el => getComputedStyle(el).color")
        assert colour == "rgb(179, 38, 30)"  # --bad, as every error
        page.screenshot(path=SCREENSHOTS / "camera-failing-phone.png", full_page=True)
    finally:
        api_client.patch("/api/config", json={"camera": {"source": "none", "url": ""}})
