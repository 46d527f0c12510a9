"""Secrets go in and never come out: a real `doormail serve` is given distinctive secrets (the
SMTP password, the OAuth2 client secret and refresh token, the DKIM private key, a user
certificate's private key, the camera's password and one written into its URL, the MQTT
password), then runs the whole workflow with them — events mailed through an SMTP server that
asks for the password, then for an OAuth2 token, Apply & Test that succeeds and one that fails,
send-email, refused changes — and every log line, API reply, export, error, outbox view and page
of the web UI is searched for them: not one may be found, in any encoding."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from doormail.web import https
from tests.conftest import free_port, log_in_with_the_form, start_serve
from tests.delivery.test_oauth2 import TokenEndpoint, endpoint  # noqa: F401 (a fixture)

pytestmark = pytest.mark.integration

USER = "door@example.org"
SMTP_PASSWORD = "smtp-Pw-7Qx2Lm9Vr4"
CLIENT_SECRET = "oauth-Secret-3Jd8Kq1Wz6"
REFRESH_TOKEN = "oauth-Refresh-5Hn0Pc7Ty2"
ACCESS_TOKEN = "oauth-Access-8Gv4Bx6Ns1"
CAMERA_PASSWORD = "cam-Pw-2Rk9Yf5Dq8"
CAMERA_URL_PASSWORD = "camurl-Pw-6Ls3Mw0Ej7"
MQTT_PASSWORD = "mqtt-Pw-4Tz1Ua8Oc5"


def _dkim_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem.decode()


def _key_body(pem: str) -> str:
    """The base64 inside a PEM key: what would give the key away, whatever wraps it."""
    return "".join(line for line in pem.splitlines() if not line.startswith("-----"))


def forms(secret: str) -> set[str]:
    """`secret` as it could appear: plain, URL-encoded, JSON-escaped, in base64 alone and in the
    AUTH PLAIN and XOAUTH2 blobs an SMTP client sends."""
    found = {secret, urllib.parse.quote(secret), json.dumps(secret)[1:-1]}
    for blob in (secret, f"\0{USER}\0{secret}", f"user={USER}\x01auth=Bearer {secret}\x01\x01"):
        found.add(base64.b64encode(blob.encode()).decode())
    if len(secret) > 64:  # a key: any 40 characters of it
        found |= {secret[i : i + 40] for i in range(0, len(secret) - 40, 20)}
    return found


# -- the servers doormail talks to ---------------------------------------------------------------


@dataclass
class MailServer:
    """Accepts AUTH PLAIN/LOGIN with USER and SMTP_PASSWORD, and XOAUTH2 with ACCESS_TOKEN."""

    received: list[bytes] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append(mechanism)
        ok = data.login == USER.encode() and data.password == SMTP_PASSWORD.encode()
        return AuthResult(success=ok, handled=False)

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:
        fields = base64.b64decode(args[1]).decode().split("\x01")
        self.logins.append("XOAUTH2")
        ok = fields[0] == f"user={USER}" and fields[1] == f"auth=Bearer {ACCESS_TOKEN}"
        return AuthResult(success=ok, handled=False)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(envelope.original_content)
        return "250 2.0.0 Ok: queued"


@pytest.fixture
def mail_server() -> Iterator[tuple[MailServer, int]]:
    handler = MailServer()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        auth_require_tls=False,
        authenticator=handler.authenticate,
    )
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def token_url(endpoint: tuple[TokenEndpoint, str]) -> Iterator[str]:  # noqa: F811
    """An OAuth2 token endpoint that gives ACCESS_TOKEN, and checks afterwards that it was asked
    with the right client secret and refresh token."""
    tokens, url = endpoint
    tokens.answer = (200, {"access_token": ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 3600})
    yield url
    assert tokens.requests, "the token endpoint was never asked"
    for form in tokens.requests:
        assert form["client_secret"] == CLIENT_SECRET
        assert form["refresh_token"] == REFRESH_TOKEN


# -- what doormail shows ------------------------------------------------------------------------


@dataclass
class Seen:
    """Everything doormail showed anyone, by where it was seen."""

    texts: dict[str, str] = field(default_factory=dict)

    def add(self, where: str, reply: httpx.Response | str | bytes) -> None:
        if isinstance(reply, httpx.Response):
            text = f"{reply.status_code} {reply.headers}\n{reply.text}"
        elif isinstance(reply, bytes):
            text = reply.decode("utf-8", "replace")
        else:
            text = reply
        self.texts[f"{where} #{len(self.texts)}"] = text


def finished_run(client: httpx.Client, seen: Seen, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        reply = client.get(f"/api/smtp/test/{run_id}")
        seen.add(f"GET /api/smtp/test/{run_id}", reply)
        if reply.json()["state"] != "running" or time.monotonic() > deadline:
            seen.add("SSE", client.get(f"/api/smtp/test/{run_id}/events"))
            return dict(reply.json())
        time.sleep(0.2)


def wait_for(condition: Any, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.1)


def doormail_cli(data: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "doormail", *args, "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout + done.stderr


def test_no_secret_is_ever_shown_in_logs_replies_exports_errors_or_pages(
    tmp_path: Path, mail_server: tuple[MailServer, int], token_url: str
) -> None:
    server, smtp_port = mail_server
    data, log = tmp_path / "data", tmp_path / "serve.log"
    dkim_key = _dkim_key()
    certificate = https.self_signed(tmp_path / "client", "127.0.0.1")
    client_key = certificate.key.read_text()
    secrets = {
        "smtp.password": SMTP_PASSWORD,
        "smtp.oauth2.client_secret": CLIENT_SECRET,
        "smtp.oauth2.refresh_token": REFRESH_TOKEN,
        "the OAuth2 access token": ACCESS_TOKEN,
        "camera.password": CAMERA_PASSWORD,
        "the password in camera.url": CAMERA_URL_PASSWORD,
        "sources.mqtt.password": MQTT_PASSWORD,
        "smtp.dkim.private_key": _key_body(dkim_key),
        "the user1 private key": _key_body(client_key),
    }
    seen = Seen()
    served = start_serve(data, output=log)
    try:
        with served.client() as admin:
            _workflow(admin, seen, server, smtp_port, token_url, dkim_key, certificate, client_key)
            for where in ("/api/config", "/api/certificates", "/api/camera/status", "/metrics"):
                seen.add(where, admin.get(where))
            seen.add("/api/tokens", admin.get("/api/tokens"))
            outbox = admin.get("/api/outbox", params={"limit": 100})
            seen.add("/api/outbox", outbox)
            for item in outbox.json()["items"]:
                seen.add("outbox item", admin.get(f"/api/outbox/{item['id']}"))
                seen.add("outbox message", admin.get(f"/api/outbox/{item['id']}/message"))
        with httpx.Client(base_url=served.url, timeout=10) as browser:
            log_in_with_the_form(browser)
            for page in ("/smtp", "/camera", "/certificates", "/outbox", "/device", "/users"):
                seen.add(f"page {page}", browser.get(page))
            for item in outbox.json()["items"]:
                seen.add("outbox page", browser.get(f"/outbox/{item['id']}"))
    finally:
        served.stop()
    for command in (["config", "export"], ["users", "export"], ["outbox"], ["token", "list"]):
        seen.add(f"doormail {' '.join(command)}", doormail_cli(data, *command))
    seen.add("serve log", log.read_text())
    for number, message in enumerate(server.received):
        seen.add(f"mail {number} as received", message)

    assert len(server.received) >= 4 and {"PLAIN", "XOAUTH2"} <= set(server.logins)
    hits = [
        f"{name} found in {where}"
        for name, secret in secrets.items()
        for where, text in seen.texts.items()
        if any(form in text for form in forms(secret))
    ]
    assert not hits, "\n".join(hits)
    assert len(seen.texts) > 40


def _workflow(
    admin: httpx.Client,
    seen: Seen,
    server: MailServer,
    smtp_port: int,
    token_url: str,
    dkim_key: str,
    certificate: https.ServerCertificate,
    client_key: str,
) -> None:
    smtp = {
        "enabled": True,
        "server": "127.0.0.1",
        "port": smtp_port,
        "security": "none",
        "username": USER,
        "password": SMTP_PASSWORD,
        "from": USER,
        "oauth2": {
            "token_url": token_url,
            "client_id": "doormail-app",
            "client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH_TOKEN,
        },
        "dkim": {"enabled": True, "domain": "example.org", "selector": "s1", "private_key": dkim_key},
    }
    config = {
        "smtp": smtp,
        "camera": {
            "source": "http",
            "url": f"http://viewer:{CAMERA_URL_PASSWORD}@127.0.0.1:9/snapshot.jpg",
            "password": CAMERA_PASSWORD,
        },
        "sources": {"mqtt": {"username": "door", "password": MQTT_PASSWORD}},
        "email_on_event": {"to": "resident@example.com", "tamper": {"enabled": True}},
    }
    seen.add("PATCH /api/config", admin.patch("/api/config", json=config))
    pem = certificate.certificate.read_text() + client_key
    seen.add("PUT user1", admin.put("/api/certificates/user1", content=pem))
    # Refusals that carry the secrets in their request.
    seen.add("bad port", admin.patch("/api/config", json={"smtp": {**smtp, "port": "x"}}))
    seen.add("bad key", admin.put("/api/certificates/user2", content=client_key))
    moved = admin.patch("/api/config", json={"smtp": {"server": "localhost"}})
    assert moved.status_code == 422
    seen.add("a server change without the password", moved)

    token = admin.get("/api/tokens")  # the door station's token is made by the CLI below
    seen.add("tokens", token)
    event = admin.post("/api/events", json={"type": "tamper.activated"})
    seen.add("POST /api/events", event)
    wait_for(lambda: len(server.received) >= 1)

    sent = admin.post("/api/smtp/test", json={"to": "installer@example.com"})
    seen.add("Apply & Test", sent)
    assert finished_run(admin, seen, sent.json()["id"])["state"] == "sent"
    wrong = {"password": "not-the-password"}
    failed = admin.post("/api/smtp/test", json={"to": "installer@example.com", "smtp": wrong})
    assert finished_run(admin, seen, failed.json()["id"])["state"] == "failed"

    action = admin.post("/api/actions/send-email", json={"to": "resident@example.com"})
    seen.add("send-email", action)
    wait_for(lambda: len(server.received) >= 3)

    oauth2 = {**smtp, "auth": "xoauth2"}
    seen.add("to OAuth2", admin.patch("/api/config", json={"smtp": oauth2}))
    seen.add("POST /api/events", admin.post("/api/events", json={"type": "tamper.activated"}))
    wait_for(lambda: len(server.received) >= 4)
    oauth_run = admin.post("/api/smtp/test", json={"to": "installer@example.com"})
    assert finished_run(admin, seen, oauth_run.json()["id"])["state"] == "sent"
