"""The SMTP server as a whole through what SPEC section 8 documents: `GET /api/outbox`'s
`server` object, `doormail_smtp_up` and `doormail_smtp_unreachable_seconds` in `/metrics`, the
Outbox and SMTP tabs' "SMTP server unreachable since … — N mails waiting" with the last error and
hint, and "retry now" by each way in (POST /api/outbox/retry, the Outbox tab's "Retry all now",
`doormail outbox retry --all`, a change of the SMTP settings)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from doormail.app import Service
from doormail.cli import cli
from doormail.web.app import create_app
from tests.conftest import ADMIN_PASSWORD
from tests.outbox.helpers import mark_temporary
from tests.web.test_api_outbox import queue

REFUSED = "connection to mail.example.org:25 refused"
HINT = "nothing listens on that port: check smtp.server and smtp.port (or the server is down)"


def deferred(service: Service, count: int) -> list[str]:
    """`count` mails that a 4xx reply sent into back-off (due in a minute or more)."""
    ids = queue(service, count)  # created a second apart from now on
    service.queue.claim("test", 100, 60, now=time.time() + count)
    for item_id in ids:
        mark_temporary(service.queue, item_id, "451 4.3.0 try later")
    return ids


def next_attempts(service: Service, ids: list[str]) -> list[float]:
    items = [service.outbox.get(item_id) for item_id in ids]
    return [item.next_attempt_at for item in items if item is not None]


def test_the_outbox_says_the_server_is_up_with_how_many_mails_wait(
    api: TestClient, service: Service
) -> None:
    queue(service, 2)
    server = api.get("/api/outbox").json()["server"]
    assert server["state"] == "up"
    assert server["waiting"] == 2
    assert server["since"] is None and server["unreachable_seconds"] == 0


def test_an_unreachable_server_shows_in_the_api_and_the_metrics(
    api: TestClient, service: Service
) -> None:
    queue(service, 3)
    service.server.unreachable(REFUSED, HINT, now=time.time() - 90)
    server = api.get("/api/outbox").json()["server"]
    assert server["state"] == "unreachable"
    assert server["waiting"] == 3
    assert server["unreachable_seconds"] >= 90
    assert (server["last_error"], server["hint"]) == (REFUSED, HINT)
    metrics = api.get("/metrics").text
    assert re.search(r"^doormail_smtp_up 0\.0$", metrics, re.M)
    seconds = re.search(r"^doormail_smtp_unreachable_seconds (\S+)$", metrics, re.M)
    assert seconds and float(seconds.group(1)) >= 90


@pytest.fixture
def browser(service: Service) -> Iterator[TestClient]:
    """The web UI, logged in."""
    with TestClient(create_app(service)) as client:
        login = client.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', login)
        assert token
        client.post(
            "/login",
            data={"csrf_token": token.group(1), "username": "admin", "password": ADMIN_PASSWORD},
            follow_redirects=False,
        )
        yield client


def test_the_outbox_and_smtp_tabs_say_since_when_and_how_many_mails_wait(
    browser: TestClient, service: Service
) -> None:
    queue(service, 3)
    since = time.time() - 600
    service.server.unreachable(REFUSED, HINT, now=since)
    zone = ZoneInfo(service.settings.load().device.timezone)
    headline = f"SMTP server unreachable since {datetime.fromtimestamp(since, zone):%H:%M}"
    for tab in ("/outbox", "/smtp"):
        page = browser.get(tab).text
        assert f"{headline} — 3 mails waiting" in page, tab
        assert REFUSED in page and HINT in page, tab
    service.server.answered()
    assert "SMTP server unreachable" not in browser.get("/outbox").text


def test_retry_all_now_in_the_outbox_tab_makes_queued_mail_due(
    browser: TestClient, service: Service
) -> None:
    ids = deferred(service, 2)
    assert min(next_attempts(service, ids)) > time.time() + 1
    page = browser.get("/outbox").text
    assert "Retry all now" in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    reply = browser.post("/outbox/retry", data={"csrf_token": token.group(1)})
    assert reply.status_code == 200
    assert "2 queued mail(s) are being sent now" in reply.text
    assert max(next_attempts(service, ids)) <= time.time()


def test_retry_all_by_the_api_probes_an_unreachable_server_at_once(
    api: TestClient, service: Service
) -> None:
    ids = deferred(service, 3)
    service.server.unreachable(REFUSED, HINT)
    assert (service.server.read().next_probe_at or 0) > time.time()
    reply = api.post("/api/outbox/retry")
    assert reply.status_code == 200
    assert reply.json() == {"queued": 3}
    assert max(next_attempts(service, ids)) <= time.time()
    assert [service.outbox.get(i).attempts for i in ids] == [0, 0, 0]  # type: ignore[union-attr]
    assert (service.server.read().next_probe_at or 0) <= time.time()


def test_a_change_of_the_smtp_settings_makes_queued_mail_due(
    api: TestClient, service: Service
) -> None:
    ids = deferred(service, 2)
    reply = api.patch("/api/config", json={"device": {"name": "Door 7"}})
    assert reply.status_code == 200
    assert min(next_attempts(service, ids)) > time.time() + 1  # not an SMTP setting
    reply = api.patch("/api/config", json={"smtp": {"server": "mail.example.org"}})
    assert reply.status_code == 200
    assert max(next_attempts(service, ids)) <= time.time()


def test_doormail_outbox_retry_all(service: Service, installation: list[str]) -> None:
    ids = deferred(service, 2)
    result = CliRunner().invoke(cli, ["outbox", "retry", "--all", *installation])
    assert result.exit_code == 0, result.output
    assert "2 queued mail(s) are due now" in result.output
    assert max(next_attempts(service, ids)) <= time.time()
    refused = CliRunner().invoke(cli, ["outbox", "retry", *installation])
    assert refused.exit_code == 1


def test_retry_all_needs_authentication(anonymous: TestClient) -> None:
    assert anonymous.post("/api/outbox/retry").status_code == 401


def test_doormail_outbox_says_the_server_is_unreachable_under_the_table(
    service: Service, installation: list[str]
) -> None:
    queue(service, 2)
    arguments = ["outbox", *installation]
    assert "SMTP server unreachable" not in CliRunner().invoke(cli, arguments).output
    service.server.unreachable(REFUSED, HINT)
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 0, result.output
    assert "— 2 mails waiting" in result.output
    assert REFUSED in result.output.replace("\n", " ")
