"""`/api/smtp/test` (Apply & Test over HTTP) against an in-process aiosmtpd server: a run is
started with unsaved settings, its log can be read or followed live as Server-Sent Events, and
bad input is refused naming the field."""

from __future__ import annotations

import email
import json
import os
import socket
import time
from collections import Counter
from collections.abc import Iterator
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient

from tests.conftest import free_port
from tests.scripted_smtp import PASSWORD, Scripted


class Recorder:
    """Takes every mail; refuses recipients at refused.example."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.endswith("@refused.example"):
            return "550 5.1.1 <" + address + ">: Recipient address rejected"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.original_content))
        return "250 2.0.0 Ok: queued as RECORDED"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Recorder, dict[str, Any]]]:
    recorder = Recorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield recorder, {"server": "127.0.0.1", "port": port, "from": "door@example.org"}
    finally:
        controller.stop()


def finished(api: TestClient, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status: dict[str, Any] = api.get(f"/api/smtp/test/{run_id}").json()
        if status["state"] != "running":
            return status
        time.sleep(0.02)
    raise AssertionError(f"Apply & Test {run_id} still running")


def test_apply_and_test_sends_the_test_email_with_one_snapshot(
    api: TestClient, smtp_server: tuple[Recorder, dict[str, Any]]
) -> None:
    recorder, smtp = smtp_server
    started = api.post("/api/smtp/test", json={"to": "alice@example.com", "smtp": smtp})
    assert started.status_code == 202
    status = finished(api, started.json()["id"])
    assert status["state"] == "sent"
    stages = [line["stage"] for line in status["log"]]
    for stage in ("resolving", "connecting", "ehlo", "mail", "rcpt", "data", "reply"):
        assert stage in stages
    assert status["log"][-1]["message"] == "250 2.0.0 Ok: queued as RECORDED"
    assert all(isinstance(line["at"], float) for line in status["log"])
    [message] = recorder.messages
    assert message["Subject"] == "doormail test e-mail from doormail"
    attachments = [part.get_filename() for part in message.walk() if part.get_filename()]
    assert attachments == ["snapshot-1.jpg"]


def test_unsaved_settings_are_not_saved(
    api: TestClient, smtp_server: tuple[Recorder, dict[str, Any]]
) -> None:
    _recorder, smtp = smtp_server
    before = api.get("/api/config").json()["smtp"]
    run_id = api.post("/api/smtp/test", json={"to": "a@example.com", "smtp": smtp}).json()["id"]
    finished(api, run_id)
    assert api.get("/api/config").json()["smtp"] == before


def test_events_stream_each_stage_and_end_with_the_state(
    api: TestClient, smtp_server: tuple[Recorder, dict[str, Any]]
) -> None:
    _recorder, smtp = smtp_server
    run_id = api.post("/api/smtp/test", json={"to": "a@example.com", "smtp": smtp}).json()["id"]
    events: list[tuple[str, dict[str, Any]]] = []
    with api.stream("GET", f"/api/smtp/test/{run_id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        kind = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((kind, json.loads(line.removeprefix("data: "))))
    assert events[-1][0] == "end" and events[-1][1]["state"] == "sent"
    assert events[-1][1]["warnings"] == api.get(f"/api/smtp/test/{run_id}").json()["warnings"]
    logged = [data for kind, data in events if kind == "log"]
    assert logged == api.get(f"/api/smtp/test/{run_id}").json()["log"]


def test_a_refused_recipient_fails_with_the_hint_as_last_line(
    api: TestClient, smtp_server: tuple[Recorder, dict[str, Any]]
) -> None:
    _recorder, smtp = smtp_server
    body = {"to": "nobody@refused.example", "smtp": smtp}
    status = finished(api, api.post("/api/smtp/test", json=body).json()["id"])
    assert status["state"] == "failed"
    assert status["log"][-2]["stage"] == "rcpt"
    assert "550 5.1.1" in status["log"][-2]["message"]
    assert status["log"][-1]["stage"] == "hint"
    assert "recipient" in status["log"][-1]["message"]


def test_the_password_never_appears_in_the_log(
    api: TestClient, smtp_server: tuple[Recorder, dict[str, Any]]
) -> None:
    _recorder, smtp = smtp_server
    smtp = {**smtp, "username": "door", "password": "very-secret-password"}
    status = finished(
        api, api.post("/api/smtp/test", json={"to": "a@b.example", "smtp": smtp}).json()["id"]
    )
    assert status["state"] == "failed"  # no AUTH in the clear with security auto
    assert "very-secret-password" not in json.dumps(status)


def test_a_bad_address_is_refused_naming_to(api: TestClient) -> None:
    reply = api.post("/api/smtp/test", json={"to": "not an address"})
    assert reply.status_code == 422
    assert reply.json()["error"]["field"] == "to"


def test_a_missing_address_is_refused_naming_to(api: TestClient) -> None:
    reply = api.post("/api/smtp/test", json={})
    assert reply.status_code == 422
    assert reply.json()["error"]["field"] == "to"


def test_a_bad_unsaved_setting_is_refused_naming_it(api: TestClient) -> None:
    body = {"to": "a@example.com", "smtp": {"server": "127.0.0.1", "port": 70000}}
    reply = api.post("/api/smtp/test", json=body)
    assert reply.status_code == 422
    assert reply.json()["error"]["field"] == "smtp.port"


def test_without_a_server_the_test_is_refused_naming_smtp_server(api: TestClient) -> None:
    reply = api.post("/api/smtp/test", json={"to": "a@example.com"})
    assert reply.status_code == 422
    assert reply.json()["error"]["field"] == "smtp.server"


def test_an_empty_ca_set_is_refused_naming_smtp_ca(api: TestClient) -> None:
    smtp = {"server": "127.0.0.1", "from": "door@example.org", "ca": "ca3"}
    reply = api.post("/api/smtp/test", json={"to": "a@example.com", "smtp": smtp})
    assert reply.status_code == 422
    assert reply.json()["error"]["field"] == "smtp.ca"


def test_an_unknown_run_is_404(api: TestClient) -> None:
    assert api.get("/api/smtp/test/nope").status_code == 404
    assert api.get("/api/smtp/test/nope/events").status_code == 404


def test_apply_and_test_needs_authentication(anonymous: TestClient) -> None:
    assert anonymous.post("/api/smtp/test", json={"to": "a@example.com"}).status_code == 401
    assert anonymous.get("/api/smtp/test/x").status_code == 401


STORED_PASSWORD = "S3cretSMTPpw"


@pytest.fixture
def login_recorder() -> Iterator[tuple[Scripted, dict[str, Any]]]:
    """A server that offers AUTH without TLS and records every login it is sent."""
    handler = Scripted()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=handler.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield handler, {"server": "127.0.0.1", "port": port, "security": "none"}
    finally:
        controller.stop()


def save_smtp_login(api: TestClient) -> None:
    smtp = {
        "server": "mail.example.com",
        "port": 587,
        "username": "door@example.com",
        "password": STORED_PASSWORD,
        "from": "door@example.com",
    }
    assert api.patch("/api/config", json={"smtp": smtp}).status_code == 200


def test_apply_and_test_does_not_send_the_stored_password_to_a_server_named_in_the_request(
    api: TestClient, login_recorder: tuple[Scripted, dict[str, Any]]
) -> None:
    recorder, elsewhere = login_recorder
    save_smtp_login(api)
    body = {"to": "a@example.com", "smtp": elsewhere}
    status = finished(api, api.post("/api/smtp/test", json=body).json()["id"])
    assert recorder.logins == []
    assert status["state"] == "failed"
    stage, message = status["log"][-2]["stage"], status["log"][-2]["message"]
    assert stage == "auth"
    assert "smtp.password" in message
    assert "given again" in message
    assert status["log"][-1]["stage"] == "hint"
    assert "smtp.password" in status["log"][-1]["message"]
    assert STORED_PASSWORD not in json.dumps(status)


def test_apply_and_test_logs_in_to_a_new_server_with_the_password_given_again(
    api: TestClient, login_recorder: tuple[Scripted, dict[str, Any]]
) -> None:
    recorder, elsewhere = login_recorder
    save_smtp_login(api)
    smtp = {**elsewhere, "password": PASSWORD.decode()}
    status = finished(
        api, api.post("/api/smtp/test", json={"to": "a@example.com", "smtp": smtp}).json()["id"]
    )
    assert recorder.logins == [(b"door@example.com", PASSWORD)]
    assert status["state"] == "sent", status["log"]


def test_apply_and_test_uses_the_stored_password_with_the_saved_server(
    api: TestClient, login_recorder: tuple[Scripted, dict[str, Any]]
) -> None:
    recorder, saved = login_recorder
    smtp = {**saved, "username": "door@example.com", "password": PASSWORD.decode()}
    api.patch("/api/config", json={"smtp": {**smtp, "from": "door@example.com"}})
    status = finished(api, api.post("/api/smtp/test", json={"to": "a@example.com"}).json()["id"])
    assert recorder.logins == [(b"door@example.com", PASSWORD)]
    assert status["state"] == "sent", status["log"]


@pytest.fixture
def silent_server() -> Iterator[tuple[socket.socket, dict[str, Any]]]:
    """A server that takes connections but never greets: a run against it waits."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    smtp = {"server": "127.0.0.1", "port": listener.getsockname()[1], "from": "door@example.org"}
    try:
        yield listener, {**smtp, "security": "none"}
    finally:
        listener.close()


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_apply_and_test_runs_at_most_three_at_a_time_and_refuses_more_with_429(
    api: TestClient, silent_server: tuple[socket.socket, dict[str, Any]]
) -> None:
    listener, smtp = silent_server
    before = open_descriptors()
    replies = [
        api.post("/api/smtp/test", json={"to": "alice@example.com", "smtp": smtp})
        for _ in range(500)
    ]
    # Each run that was let in holds its connection; none of the refused ones opened one.
    assert open_descriptors() - before < 20
    assert Counter(reply.status_code for reply in replies) == {202: 3, 429: 497}
    error = replies[-1].json()["error"]
    assert error["code"] == "too_many_requests"
    assert "3 Apply & Test runs" in error["message"]

    # The server goes away: the runs fail, and their places are free again.
    listener.close()
    started = [reply.json()["id"] for reply in replies if reply.status_code == 202]
    assert [finished(api, run_id)["state"] for run_id in started] == ["failed"] * 3
    again = api.post("/api/smtp/test", json={"to": "alice@example.com", "smtp": smtp})
    assert again.status_code == 202


def test_the_log_in_the_uis_words_names_labels_instead_of_keys(api: TestClient) -> None:
    smtp = {"server": "127.0.0.1", "port": free_port(), "from": "door@example.org"}
    started = api.post("/api/smtp/test", json={"to": "alice@example.com", "smtp": smtp})
    run_id = started.json()["id"]
    deadline = time.monotonic() + 30
    while api.get(f"/api/smtp/test/{run_id}").json()["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    keys = api.get(f"/api/smtp/test/{run_id}").json()["log"][-1]["message"]
    labels = api.get(f"/api/smtp/test/{run_id}", params={"labels": "ui"}).json()["log"][-1]
    assert "smtp.server and smtp.port" in keys
    assert "Server Address and Server Port" in labels["message"]
