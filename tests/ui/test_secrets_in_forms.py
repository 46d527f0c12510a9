"""Secrets in the settings tabs, in a browser: a password written into the camera URL is shown
as stars and kept when the tab is applied unchanged; moving the SMTP server without typing the
password again is refused at the password field (SPEC section 1)."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from doormail.app import Paths, build_service
from tests.conftest import RunningService

CAMERA_URL = "rtsp://viewer:cam-s3cret-77@cam.example/stream1"


def stored_camera_url(served: RunningService) -> str:
    return build_service(Paths.resolve(str(served.data_dir))).settings.load().camera.url


def test_the_camera_tab_shows_a_password_in_the_url_as_stars_and_applying_keeps_it(
    page: Page, served: RunningService, api_client: httpx.Client
) -> None:
    camera = {"source": "rtsp", "url": CAMERA_URL}
    assert api_client.patch("/api/config", json={"camera": camera}).status_code == 200
    page.goto(served.url + "/camera")
    url = page.get_by_label("Camera URL")
    expect(url).to_have_value("rtsp://viewer:***@cam.example/stream1")
    assert "cam-s3cret-77" not in page.content()
    page.get_by_role("button", name="Apply", exact=True).click()
    expect(page.get_by_role("status").first).to_contain_text("Settings saved.")
    assert stored_camera_url(served) == CAMERA_URL
    # The same stars in front of another camera are refused at the URL.
    url.fill("rtsp://viewer:***@10.0.0.9/stream1")
    page.get_by_role("button", name="Apply", exact=True).click()
    expect(page.locator('[data-error-for="camera.url"]')).to_contain_text("password")
    assert stored_camera_url(served) == CAMERA_URL


def test_moving_the_smtp_server_without_the_password_is_refused_at_the_password_field(
    page: Page, served: RunningService, api_client: httpx.Client
) -> None:
    login = {"server": "mx.example.com", "username": "door", "password": "S3cretSMTPpw"}
    assert api_client.patch("/api/config", json={"smtp": login}).status_code == 200
    page.goto(served.url + "/smtp")
    page.get_by_label("Server Address").fill("127.0.0.1")
    page.get_by_role("button", name="Apply", exact=True).click()
    error = page.locator('[data-error-for="smtp.password"]')
    expect(error).to_contain_text("Server Address changed, so Password must be given again")
    assert api_client.get("/api/config").json()["smtp"]["server"] == "mx.example.com"
    page.get_by_label("Server Address").fill("127.0.0.1")
    page.get_by_label("Password", exact=True).fill("for-the-new-server")
    page.get_by_role("button", name="Apply", exact=True).click()
    expect(page.get_by_role("status").first).to_contain_text("Settings saved.")
    assert api_client.get("/api/config").json()["smtp"]["server"] == "127.0.0.1"
