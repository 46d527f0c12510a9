"""The Camera tab in a browser: without a camera the live snapshot is the N/A picture; with an
HTTP snapshot camera (a real server on a socket) it shows that camera's picture."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.conftest import RunningService

RED = (220, 20, 20)

CENTRE_COLOUR = """(img) => {
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const context = canvas.getContext('2d');
    context.drawImage(img, 0, 0);
    return Array.from(context.getImageData(img.naturalWidth / 2, img.naturalHeight / 2, 1, 1).data);
}"""


def jpeg(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (800, 600), colour).save(out, "JPEG", quality=90)
    return out.getvalue()


@pytest.fixture
def red_camera() -> Iterator[str]:
    """An HTTP snapshot camera whose every picture is red."""
    picture = jpeg(RED)

    class Snapshot(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(picture)))
            self.end_headers()
            self.wfile.write(picture)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Snapshot)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/snapshot.jpg"
    finally:
        server.shutdown()
        server.server_close()


def test_without_a_camera_the_snapshot_is_the_na_picture(
    page: Page, served: RunningService
) -> None:
    page.goto(served.url + "/camera")
    image = page.locator("#snapshot-image")
    expect(image).to_have_attribute("data-camera", "none")
    expect(page.locator("#camera-status")).to_contain_text("N/A")
    assert image.evaluate("(img) => img.naturalWidth") == 640


def test_an_http_camera_shows_its_live_snapshot(
    page: Page, served: RunningService, red_camera: str
) -> None:
    page.goto(served.url + "/camera")
    page.get_by_label("Camera Source").select_option("http")
    page.get_by_label("Camera URL").fill(red_camera)
    page.get_by_role("button", name="Apply", exact=True).click()
    expect(page.get_by_role("status").first).to_contain_text("Settings saved.")
    image = page.locator("#snapshot-image")
    page.get_by_label("Resolution").select_option("320x240")
    expect(image).to_have_attribute("data-resolution", "320x240", timeout=10_000)
    expect(image).to_have_attribute("data-camera", "ok")
    assert image.evaluate("(img) => [img.naturalWidth, img.naturalHeight]") == [320, 240]
    red, green, blue, _alpha = image.evaluate(CENTRE_COLOUR)
    assert red > 180 and green < 70 and blue < 70, (red, green, blue)


def test_a_camera_url_of_the_wrong_kind_is_shown_at_its_field(
    page: Page, served: RunningService
) -> None:
    page.goto(served.url + "/camera")
    page.get_by_label("Camera Source").select_option("rtsp")
    page.get_by_label("Camera URL").fill("http://camera.example/stream")
    page.get_by_role("button", name="Apply", exact=True).click()
    expect(page.locator('[data-error-for="camera.url"]')).to_contain_text("rtsp://")
