"""A quiet, useful log (SPEC section 1), read from a real `doormail serve` with a camera polled for
snapshots: one line per event taken and per mail sent or failed, nothing per camera picture or
per HTTP request (those at --log-level debug), and --log-format json for log collectors."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller

from tests.camera.cameras import HttpCameraServer
from tests.conftest import RunningService, free_port, start_serve
from tests.scripted_smtp import Scripted

RUN_SECONDS = 30.0


@pytest.fixture
def camera() -> Iterator[HttpCameraServer]:
    server = HttpCameraServer(auth="none").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp() -> Iterator[tuple[Scripted, int]]:
    handler = Scripted()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


def configure(served: RunningService, camera: HttpCameraServer, smtp_port: int) -> None:
    smtp = {"enabled": True, "server": "127.0.0.1", "port": smtp_port, "security": "none"}
    smtp["from"] = "door@example.org"
    with served.client() as client:
        reply = client.patch(
            "/api/config",
            json={
                "smtp": smtp,
                "email_on_call": {"send": "missed", "default_to": "desk@example.com"},
                "camera": {"source": "http", "url": camera.url("/snapshot.jpg")},
            },
        )
        assert reply.status_code == 200, reply.text


def missed_call(client: httpx.Client, answered: bool = False) -> None:
    event = {"type": "call.ended", "call_id": uuid.uuid4().hex, "called": "9"}
    reply = client.post("/api/events", json=event | {"answered": answered})
    assert reply.status_code == 202, reply.text


def lines_after(output: Path, mark: str) -> list[str]:
    lines = output.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if mark in line)
    return lines[start + 1 :]


def test_half_a_minute_with_a_polled_camera_logs_only_events_and_mails(
    tmp_path: Path, camera: HttpCameraServer, smtp: tuple[Scripted, int]
) -> None:
    output = tmp_path / "serve.log"
    served = start_serve(tmp_path / "data", output=output)
    try:
        configure(served, camera, smtp[1])
        requests_before = camera.requests
        with served.client() as client:
            for _ in range(3):
                missed_call(client)
            missed_call(client, answered=True)  # taken, and no mail: one line still
            time.sleep(RUN_SECONDS)
    finally:
        served.stop()
    polled = camera.requests - requests_before
    lines = lines_after(output, "listening on")
    print(f"\nlog_lines_30s {len(lines)}\ncamera_requests_30s {polled}")
    assert polled >= RUN_SECONDS  # the camera was asked at least once a second
    taken = [line for line in lines if "doormail.intake" in line]
    sent = [line for line in lines if "doormail.outbox" in line and " sent: 250" in line]
    assert len(taken) == 4, lines
    assert sum("1 mail(s) queued to desk@example.com" in line for line in taken) == 3
    assert sum("no mail (email_on_call.send is missed" in line for line in taken) == 1
    assert len(sent) == 3, lines
    # Besides them only the camera's start: nothing per picture, nothing per HTTP request.
    rest = [line for line in lines if line not in taken + sent]
    assert [line for line in rest if "camera: receiving pictures" not in line] == []
    assert len(lines) <= 8, f"{len(lines)} lines for {polled} camera requests"


def test_log_level_debug_shows_each_camera_request(
    tmp_path: Path, camera: HttpCameraServer, smtp: tuple[Scripted, int]
) -> None:
    output = tmp_path / "serve.log"
    served = start_serve(tmp_path / "data", output=output, options=["--log-level", "debug"])
    try:
        configure(served, camera, smtp[1])
        time.sleep(3)
    finally:
        served.stop()
    text = output.read_text()
    assert text.count(f"HTTP Request: GET {camera.url('/snapshot.jpg')}") >= 2
    assert text.count("camera: a picture of") >= 2


def test_log_level_warning_leaves_out_the_events(
    tmp_path: Path, camera: HttpCameraServer, smtp: tuple[Scripted, int]
) -> None:
    output = tmp_path / "serve.log"
    served = start_serve(tmp_path / "data", output=output, options=["--log-level", "warning"])
    try:
        configure(served, camera, smtp[1])
        with served.client() as client:
            missed_call(client)
    finally:
        served.stop()
    assert lines_after(output, "listening on") == []


def test_log_format_json_is_one_object_a_line(
    tmp_path: Path, camera: HttpCameraServer, smtp: tuple[Scripted, int]
) -> None:
    output = tmp_path / "serve.log"
    served = start_serve(tmp_path / "data", output=output, options=["--log-format", "json"])
    try:
        configure(served, camera, smtp[1])
        with served.client() as client:
            missed_call(client)
        deadline = time.monotonic() + 10
        while " sent: 250" not in output.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        served.stop()
    records = [json.loads(line) for line in lines_after(output, "listening on")]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    by_logger = {record["logger"]: record for record in records}
    assert by_logger["doormail.intake"]["level"] == "INFO"
    assert "1 mail(s) queued to desk@example.com" in by_logger["doormail.intake"]["message"]
    assert " sent: 250 " in by_logger["doormail.outbox"]["message"]
