"""Hostile request bodies, as an attacker sends them: too large (declared or streamed), JSON
nested 10,000 deep, bytes that are not UTF-8, a CSV of 200,000 lines, PEM garbage. Each gets a
clear refusal naming the body, the field or the line; the service keeps answering and what it
stored stays whole."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from doormail.app import Service
from doormail.users.csv import MAX_IMPORT_LINES
from doormail.web.app import create_app
from doormail.web.bodies import MAX_REQUEST_BYTES
from tests.conftest import ADMIN_PASSWORD

TEN_MB = 10 * 1000 * 1000
DEEP = 10_000
# Every route that reads a JSON body, with the method it takes.
JSON_ROUTES = [
    ("POST", "/api/events"),
    ("POST", "/api/users"),
    ("PUT", "/api/users/u-1"),
    ("PATCH", "/api/config"),
    ("PUT", "/api/config"),
    ("POST", "/api/actions/send-email"),
    ("POST", "/api/smtp/test"),
    ("POST", "/api/templates/preview"),
]


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def assert_refused(reply: Any, status: int, field: str) -> dict[str, Any]:
    assert reply.status_code == status, reply.text[:300]
    error: dict[str, Any] = reply.json()["error"]
    assert error["field"] == field, error
    assert "Traceback" not in reply.text
    return error


@pytest.fixture
def stored(api: TestClient) -> Iterator[dict[str, Any]]:
    """A user and a device name stored before the attack, and a check that both are whole
    after it and that the service still answers."""
    assert api.post("/api/users", json={"id": "u-1", "name": "Alice"}).status_code == 201
    config = api.patch("/api/config", json={"device": {"name": "Gate 1"}}).json()
    yield config
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/api/config").json() == config
    users = api.get("/api/users").json()
    assert [(u["id"], u["name"]) for u in users["items"]] == [("u-1", "Alice")]


def test_a_body_declared_larger_than_the_limit_is_refused_before_the_route_runs(
    api: TestClient, stored: dict[str, Any], service: Service
) -> None:
    item = "no-such-mail"
    reply = api.post(
        f"/api/outbox/{item}/retry",
        content=b"x" * TEN_MB,
        headers={"content-type": "application/json"},
    )
    error = assert_refused(reply, 413, "body")
    assert error["code"] == "too_large"
    assert str(MAX_REQUEST_BYTES) in error["message"]
    # The retry route never reads its body: it did not run (it would have answered 404).
    assert reply.headers["connection"] == "close"


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
def test_json_nested_ten_thousand_deep_is_a_400_naming_the_body(
    api: TestClient, stored: dict[str, Any], method: str, path: str
) -> None:
    for body in (nested(DEEP), b"[" * DEEP + b"]" * DEEP):
        reply = api.request(method, path, content=body, headers={"content-type": "application/json"})
        error = assert_refused(reply, 400, "body")
        assert error["code"] == "bad_request"
        assert "nested too deeply" in error["message"]


@pytest.mark.parametrize("depth", [900, 950, 980, 990, 995])
@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
def test_json_nested_just_within_what_the_parser_follows_is_refused_as_a_bad_value(
    api: TestClient, method: str, path: str, depth: int
) -> None:
    reply = api.request(
        method, path, content=nested(depth), headers={"content-type": "application/json"}
    )
    assert reply.status_code in (400, 422), reply.text[:300]
    assert reply.json()["error"]["field"]


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
def test_a_body_that_is_not_utf8_is_a_400_naming_the_body(
    api: TestClient, stored: dict[str, Any], method: str, path: str
) -> None:
    reply = api.request(
        method, path, content=b'{"name": "\xff\xfe"}', headers={"content-type": "application/json"}
    )
    error = assert_refused(reply, 400, "body")
    assert "UTF-8" in error["message"]


def test_the_intercom_form_answers_its_own_way_to_deep_and_broken_json(
    api: TestClient, stored: dict[str, Any]
) -> None:
    for body in (nested(DEEP), b'{"to": "\xff"}'):
        reply = api.post("/api/email/send", content=body, headers={"content-type": "application/json"})
        assert reply.status_code == 200
        assert reply.json()["error"]["code"] == 12


def test_a_csv_that_is_not_utf8_names_the_body(api: TestClient, stored: dict[str, Any]) -> None:
    reply = api.post("/api/users/import", content=b"id,name\nu-2,\xff\n")
    assert "UTF-8" in assert_refused(reply, 400, "body")["message"]


def test_a_csv_of_200000_lines_is_refused_naming_the_line_limit(
    api: TestClient, stored: dict[str, Any]
) -> None:
    lines = ["id,name,email,numbers,cards,bluetooth,fingerprints"]
    lines += [f"u{n},,,,,," for n in range(200_000)]
    body = ("\n".join(lines) + "\n").encode()
    assert len(body) < MAX_REQUEST_BYTES  # short lines: the size limit alone would let it in
    reply = api.post("/api/users/import", content=body, headers={"content-type": "text/csv"})
    error = assert_refused(reply, 422, f"line {MAX_IMPORT_LINES + 1}: file")
    assert "200001 lines" in error["message"]
    assert len(reply.content) < 2000


def test_a_csv_of_many_bad_lines_is_answered_in_a_reply_of_its_own_size(
    api: TestClient, stored: dict[str, Any]
) -> None:
    lines = ["id,name,email,numbers,cards,bluetooth,fingerprints"]
    lines += [f"u {n},,not-an-address,,,," for n in range(20_000)]
    reply = api.post("/api/users/import", content="\n".join(lines).encode())
    error = assert_refused(reply, 422, "line 2: id")
    assert len(error["errors"]) == 40_000  # every bad line, by number and column
    # The message names the count and the first, not all of them again.
    assert len(error["message"]) < 300


@pytest.mark.parametrize(
    "pem",
    [
        b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n",
        b"-----BEGIN CERTIFICATE-----\n" + b"A" * 60_000,
        b"\xff\xfe\x00" * 1000,
        b"-----BEGIN PRIVATE KEY-----\n" * 2000,
    ],
)
def test_pem_garbage_is_refused_naming_the_slot(
    api: TestClient, stored: dict[str, Any], pem: bytes
) -> None:
    reply = api.put("/api/certificates/user1", content=pem, headers={"content-type": "text/plain"})
    assert_refused(reply, 422, "user1")
    assert api.get("/api/certificates").json()["certificates"][1]["empty"] is True


# -- a body streamed without Content-Length, counted as it arrives ------------------------------


def _scope(path: str) -> dict[str, Any]:
    credentials = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode())
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"doormail"),
            (b"content-type", b"application/json"),
            (b"transfer-encoding", b"chunked"),
            (b"authorization", b"Basic " + credentials),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8480),
    }


@pytest.mark.parametrize("path", ["/api/events", "/api/users/import", "/api/config"])
def test_a_streamed_body_is_cut_off_with_413_once_it_passes_the_limit(
    service: Service, path: str
) -> None:
    app = create_app(service)
    chunk = b" " * 65536
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if pulled >= TEN_MB:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = _scope(path)
    if path == "/api/config":
        scope["method"] = "PATCH"
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 413
    assert b'"field":"body"' in sent[1]["body"]
    assert pulled <= MAX_REQUEST_BYTES + len(chunk)
