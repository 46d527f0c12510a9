"""Hostile input at the largest size accepted: the texts that once took quadratic time (or
worse) in the template placeholders, the HTML read for a mail's text part, the PEM reader and
the MJPEG splitter, each timed where the service meets it. Every figure is the slowest case of
its kind, best of three runs; the target for each is HOSTILE_TARGET_MS, and
`hostile_input_over_target` counts the figures above it (`python -m bench.hostile_input` exits
1 when there is one)."""

from __future__ import annotations

import base64
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from fastapi.testclient import TestClient

from doormail.app import Paths, build_service
from doormail.camera.mjpeg import MultipartSplitter
from doormail.camera.source import MAX_FRAME_BYTES, CameraError
from doormail.certificates import MAX_PEM_BYTES, CertificateError
from doormail.htmltext import html_to_text
from doormail.placeholders import preview_values
from doormail.settings import MAX_BODY, MAX_SUBJECT, Settings
from doormail.templates import render
from doormail.web.app import create_app

HOSTILE_TARGET_MS = 100.0
PASSWORD = "bench-admin-password"
RUNS = 3

# Repeated units that cost quadratic time before (head, unit, tail).
TEMPLATES = [
    ("$A:", "\\$A:", ""),
    ("$User:", "\\$User:", ""),
    ("$User:", "\\$User:", "$"),
    ("", "\\$User:", ""),
    ("$User:", "\\$", ""),
    ("", "$User:a=b,c=d$", ""),
    ("", "$$", ""),
]
HTML = [
    ("<p>", "<a\n", ""),
    ("<p>", "<a/", ""),
    ("<p>", '<a x="', ""),
    ("<p>", "<!--x>", ""),
    ("<p>", "'<a href='</script>", ""),
    ("", "<ol><li>", ""),
    ("", "<![", ""),
    ("", "</p>#", ""),
]
PEM = [
    ("", "-----BEGIN A-----\n", ""),
    ("", "-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n"),
    ("-----BEGIN CERTIFICATE-----\n", "-----END A-----\n", ""),
]
# MJPEG parts that never send what the splitter waits for: (boundary, start, unit).
MJPEG = [
    (None, b"", b"x"),
    (None, b"\n--", b"x"),
    (b"frame", b"--frame", b"x"),
    (b"frame", b"--frame\r\n", b"H: v\r\n"),
    (b"frame", b"--frame\r\nContent-Type: image/jpeg\r\n\r\n", b"\xff"),
]
MJPEG_CHUNK = 4096


def filled(head: str, unit: str, tail: str, size: int) -> str:
    """`head`, then `unit` repeated, then `tail`: `size` characters at most."""
    return head + unit * ((size - len(head) - len(tail)) // len(unit)) + tail


def best_ms(action: Callable[[], object]) -> float:
    took = []
    for _ in range(RUNS):
        started = time.perf_counter()
        action()
        took.append((time.perf_counter() - started) * 1000)
    return min(took)


def slowest(actions: list[Callable[[], object]]) -> float:
    return round(max(best_ms(action) for action in actions), 2)


def template_render_ms() -> float:
    values = preview_values("access", Settings(), datetime.now(UTC))
    bodies = [filled(*case, MAX_BODY) for case in TEMPLATES]
    return slowest([partial(render, body, values, html=True) for body in bodies])


def html_text_ms() -> float:
    bodies = [filled(*case, MAX_BODY) for case in HTML]
    return slowest([partial(html_to_text, body) for body in bodies])


def preview_ms(folder: Path) -> float:
    """`POST /api/templates/preview` with the largest subject and body of each hostile kind."""
    service = build_service(Paths.resolve(str(folder / "preview")))
    service.accounts.ensure_admin(PASSWORD)
    requests = [
        {"kind": "access", "subject": filled(*case, MAX_SUBJECT), "body": filled(*case, MAX_BODY)}
        for case in TEMPLATES + HTML
    ]
    basic = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    try:
        with TestClient(create_app(service), headers={"Authorization": f"Basic {basic}"}) as client:

            def post(request: dict[str, str]) -> None:
                reply = client.post("/api/templates/preview", json=request)
                assert reply.status_code == 200, reply.text

            post(requests[0])  # the password check, once
            return slowest([partial(post, request) for request in requests])
    finally:
        service.engine.dispose()  # after the app's shutdown, before its folder goes


def pem_parse_ms(folder: Path) -> float:
    """A certificate slot given the largest PEM text of each hostile kind (each refused)."""
    service = build_service(Paths.resolve(str(folder / "pem")))
    certificates = service.certificates
    texts = [filled(*case, MAX_PEM_BYTES) for case in PEM]

    def put(text: str) -> None:
        try:
            certificates.put("ca1", text)
        except CertificateError:
            return
        raise AssertionError("a hostile PEM text was accepted")

    try:
        return slowest([partial(put, text) for text in texts])
    finally:
        service.engine.dispose()


def mjpeg_part_ms() -> float:
    """One part of the largest size, in 4 KB chunks, that never sends what is awaited."""
    size = MAX_FRAME_BYTES + 65536

    def split(boundary: bytes | None, start: bytes, unit: bytes) -> None:
        splitter = MultipartSplitter(boundary)
        chunk = unit * (MJPEG_CHUNK // len(unit))
        splitter.feed(start)
        try:
            for _ in range(size // len(chunk) + 1):
                splitter.feed(chunk)
        except CameraError:
            return
        raise AssertionError("an endless part was not refused")

    return slowest([partial(split, *case) for case in MJPEG])


def run() -> list[tuple[str, float, str]]:
    with tempfile.TemporaryDirectory() as folder:
        figures = [
            ("hostile_template_render_64kb_ms", template_render_ms(), "ms"),
            ("hostile_html_text_64kb_ms", html_text_ms(), "ms"),
            ("hostile_template_preview_64kb_ms", preview_ms(Path(folder)), "ms"),
            ("hostile_pem_parse_64kb_ms", pem_parse_ms(Path(folder)), "ms"),
            ("hostile_mjpeg_part_8mb_ms", mjpeg_part_ms(), "ms"),
        ]
    over = sum(value > HOSTILE_TARGET_MS for _, value, _ in figures)
    return [
        *figures,
        ("hostile_input_target_ms", HOSTILE_TARGET_MS, "ms"),
        ("hostile_input_over_target", float(over), "figures"),
    ]


if __name__ == "__main__":
    results = run()
    for name, value, unit in results:
        print(f"{name} {value:.6g} {unit}")
    sys.exit(1 if results[-1][1] else 0)
