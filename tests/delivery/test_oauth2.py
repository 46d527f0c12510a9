"""`smtp.auth = xoauth2`: access tokens from a real (in-process) OAuth2 token endpoint, kept until
shortly before expiry, and presented to an aiosmtpd server that accepts only that token."""

from __future__ import annotations

import base64
import json
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from doormail.app import Service
from doormail.applytest import SmtpTests
from doormail.delivery.oauth2 import OAuth2Tokens
from doormail.delivery.session import (
    PermanentDeliveryError,
    SmtpSession,
    TemporaryDeliveryError,
)
from doormail.settings import OAuth2, Smtp, apply_patch
from tests.camera.fakes import NoCamera
from tests.conftest import free_port


class TokenEndpoint:
    """A token endpoint: each refresh-token grant gets `tok-N`; `answer` can script a refusal."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self.answer: tuple[int, dict[str, Any]] | None = None
        self.expires_in = 3600

    def reply(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.requests.append(form)
        if self.answer is not None:
            return self.answer
        token = f"tok-{len(self.requests)}"
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in}


@pytest.fixture
def endpoint() -> Iterator[tuple[TokenEndpoint, str]]:
    tokens = TokenEndpoint()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
            status, body = tokens.reply(form)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield tokens, f"http://127.0.0.1:{server.server_address[1]}/token"
    finally:
        server.shutdown()
        server.server_close()


class XOAuth2Server:
    """Accepts AUTH XOAUTH2 for mailbox door@example.org with the bearer token `accepted`."""

    def __init__(self) -> None:
        self.accepted = "tok-1"
        self.presented: list[str] = []

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:
        fields = base64.b64decode(args[1]).decode().split("\x01")
        user = fields[0].removeprefix("user=")
        token = fields[1].removeprefix("auth=Bearer ")
        self.presented.append(token)
        ok = user == "door@example.org" and token == self.accepted
        return AuthResult(success=ok, handled=False)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 2.0.0 Ok: queued"


@pytest.fixture
def smtp_port() -> Iterator[tuple[XOAuth2Server, int]]:
    handler = XOAuth2Server()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        auth_require_tls=False,
        authenticator=lambda *args: AuthResult(success=False, handled=False),
    )
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def _smtp(port: int, token_url: str) -> Smtp:
    return Smtp(
        server="127.0.0.1",
        port=port,
        security="none",  # aiosmtpd here has no TLS; the lab covers TLS
        username="door@example.org",
        auth="xoauth2",
        oauth2=OAuth2(
            token_url=token_url,
            client_id="doormail-app",
            client_secret="app-secret",
            refresh_token="refresh-1",
            scope="https://outlook.office.com/SMTP.Send offline_access",
        ),
    )


async def _send(smtp: Smtp, tokens: OAuth2Tokens | None = None) -> None:
    async with SmtpSession(smtp, ssl.create_default_context(), timeout=5, access_token=tokens) as s:
        await s.send("door@example.org", "alice@example.com", b"Subject: x\r\n\r\nx\r\n")


async def test_xoauth2_presents_the_token_from_the_refresh_token_grant(
    endpoint: tuple[TokenEndpoint, str], smtp_port: tuple[XOAuth2Server, int]
) -> None:
    tokens, url = endpoint
    server, port = smtp_port
    await _send(_smtp(port, url))
    assert server.presented == ["tok-1"]
    assert tokens.requests == [
        {
            "grant_type": "refresh_token",
            "refresh_token": "refresh-1",
            "client_id": "doormail-app",
            "client_secret": "app-secret",
            "scope": "https://outlook.office.com/SMTP.Send offline_access",
        }
    ]


async def test_a_token_is_reused_until_shortly_before_it_expires(
    endpoint: tuple[TokenEndpoint, str], smtp_port: tuple[XOAuth2Server, int]
) -> None:
    tokens, url = endpoint
    now = [1000.0]
    source = OAuth2Tokens(_smtp(25, url).oauth2, clock=lambda: now[0])
    assert await source() == "tok-1"
    now[0] += 3000
    assert await source() == "tok-1"
    now[0] += 541  # within the last minute of its hour
    assert await source() == "tok-2"
    assert len(tokens.requests) == 2


async def test_a_rotated_refresh_token_is_used_for_the_next_refresh(
    endpoint: tuple[TokenEndpoint, str],
) -> None:
    tokens, url = endpoint
    tokens.answer = (200, {"access_token": "a", "expires_in": 0, "refresh_token": "refresh-2"})
    source = OAuth2Tokens(_smtp(25, url).oauth2)
    await source()
    await source()
    assert [request["refresh_token"] for request in tokens.requests] == ["refresh-1", "refresh-2"]


async def test_a_refused_refresh_token_is_permanent_and_says_sign_in_again(
    endpoint: tuple[TokenEndpoint, str], smtp_port: tuple[XOAuth2Server, int]
) -> None:
    tokens, url = endpoint
    tokens.answer = (400, {"error": "invalid_grant", "error_description": "AADSTS70008: expired"})
    _server, port = smtp_port
    with pytest.raises(PermanentDeliveryError) as caught:
        await _send(_smtp(port, url))
    assert "invalid_grant" in str(caught.value)
    assert "smtp.oauth2.refresh_token" in caught.value.hint


async def test_a_token_endpoint_that_is_down_is_temporary(
    smtp_port: tuple[XOAuth2Server, int],
) -> None:
    _server, port = smtp_port
    with pytest.raises(TemporaryDeliveryError) as caught:
        await _send(_smtp(port, f"http://127.0.0.1:{free_port()}/token"))
    assert "smtp.oauth2.token_url" in caught.value.hint


async def test_a_token_the_server_refuses_points_at_the_oauth2_settings(
    endpoint: tuple[TokenEndpoint, str], smtp_port: tuple[XOAuth2Server, int]
) -> None:
    _tokens, url = endpoint
    server, port = smtp_port
    server.accepted = "some-other-token"
    with pytest.raises(PermanentDeliveryError) as caught:
        await _send(_smtp(port, url))
    assert caught.value.code == 535
    assert "smtp.oauth2" in caught.value.hint


def _save_xoauth2(service: Service, port: int) -> None:
    smtp = _smtp(port, "https://login.example.com/token").model_dump(by_alias=True)
    patch = {"smtp": {**smtp, "from": "door@example.org"}}
    service.settings.save(apply_patch(service.settings.load(), patch))


async def test_apply_and_test_does_not_send_the_stored_oauth2_secrets_to_a_token_url_it_names(
    service: Service,
    endpoint: tuple[TokenEndpoint, str],
    smtp_port: tuple[XOAuth2Server, int],
) -> None:
    tokens, elsewhere = endpoint
    server, port = smtp_port
    _save_xoauth2(service, port)
    tests = SmtpTests(service.settings.load, service.certificates.tls_context, NoCamera())
    run = tests.start("alice@example.com", {"oauth2": {"token_url": elsewhere}})
    lines = [line async for line in run.follow()]
    assert tokens.requests == []
    assert server.presented == []
    assert run.state == "failed"
    assert lines[-2].stage == "auth"
    assert "smtp.oauth2.client_secret must be given again" in lines[-2].message
    assert "app-secret" not in str(run.public()) and "refresh-1" not in str(run.public())
    given = {"token_url": elsewhere, "client_secret": "app-secret", "refresh_token": "refresh-1"}
    again = tests.start("alice@example.com", {"oauth2": given})
    [line async for line in again.follow()]
    assert again.state == "sent", again.log
    assert [request["client_secret"] for request in tokens.requests] == ["app-secret"]
