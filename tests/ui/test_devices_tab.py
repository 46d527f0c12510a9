"""The Devices tab in a real browser: a 2N intercom added through the form is followed, its
state turns connected and its events count up live, without reloading; Test shows each stage;
a bad value is shown at its field; Delete removes it."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.conftest import RunningService
from tests.intercom2n.emulator import IntercomThread
from tests.ui.conftest import SCREENSHOTS

USER, PASSWORD = "api", "api-password"


def test_a_2n_intercom_added_in_the_devices_tab_is_followed_live(
    page: Page, served: RunningService
) -> None:
    with IntercomThread(user=USER, password=PASSWORD) as intercom:
        page.goto(served.url + "/devices")
        page.get_by_label("Device ID").fill("front-door")
        page.get_by_label("Device Name").fill("Front door")
        page.get_by_label("Intercom URL").fill(intercom.url)
        page.get_by_label("API Username").fill(USER)
        page.get_by_label("API Password").fill(PASSWORD)
        page.get_by_role("button", name="Add device").click()
        row = page.locator('tr[data-device="front-door"]')
        expect(row.locator('[data-field="state"]')).to_have_text("connected", timeout=15_000)
        intercom.tamper()
        expect(row.locator('[data-field="events_received"]')).to_have_text("1", timeout=10_000)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "devices-desktop.png"), full_page=True)
        page.get_by_role("button", name="Test front-door").click()
        result = page.locator("[data-device-test]")
        expect(result).to_contain_text("passed")
        expect(result.locator('[data-stage="events"]')).to_contain_text("ok")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete front-door").click()
    expect(page.locator('tr[data-device="front-door"]')).to_have_count(0)


def test_a_bad_device_id_is_shown_at_its_field(page: Page, served: RunningService) -> None:
    page.goto(served.url + "/devices")
    page.get_by_label("Device ID").fill("no spaces please")
    page.get_by_role("button", name="Add device").click()
    expect(page.locator('[data-error="id"]')).to_contain_text("A-Z a-z 0-9")
