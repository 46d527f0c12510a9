"""Apply & Test against the Postfix lab: through the HTTP API with unsaved settings and through
`doormail test-email` as a real process, the test e-mail lands in the maildir with its snapshot,
and a failure ends with the hint that says what to fix."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from doormail.app import Paths, Service, build_service
from doormail.delivery.errors import AUTH_HINT
from doormail.settings import apply_patch
from tests.conftest import Lab

pytestmark = pytest.mark.integration


def recipient() -> str:
    return f"apply-test-{uuid.uuid4().hex}@example.com"


def attachments(message: Message) -> dict[str, bytes]:
    found = {}
    for part in message.walk():
        name = part.get_filename()
        if name:
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            found[name] = payload
    return found


def submission(lab: Lab, **changes: Any) -> dict[str, Any]:
    """Unsaved settings for the lab's STARTTLS submission port, trusting its CA in ca1."""
    return {
        "server": "localhost",
        "port": lab.starttls,
        "security": "starttls",
        "username": lab.user,
        "password": lab.password,
        "from": "door@example.org",
        "ca": "ca1",
        **changes,
    }


def finished(api: TestClient, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status: dict[str, Any] = api.get(f"/api/smtp/test/{run_id}").json()
        if status["state"] != "running":
            return status
        time.sleep(0.05)
    raise AssertionError("Apply & Test did not finish")


def test_apply_and_test_through_the_api_lands_with_its_snapshot(
    lab: Lab, service: Service, api: TestClient
) -> None:
    service.certificates.put("ca1", lab.ca.read_text())
    to = recipient()
    started = api.post("/api/smtp/test", json={"to": to, "smtp": submission(lab)})
    assert started.status_code == 202
    status = finished(api, started.json()["id"])
    assert status["state"] == "sent", status["log"]
    by_stage = {line["stage"]: line["message"] for line in status["log"]}
    assert "127.0.0.1" in by_stage["resolving"]
    assert "TLSv1." in by_stage["tls"] and "issuer CN=smtp-lab test CA" in by_stage["tls"]
    assert by_stage["auth"].startswith("PLAIN as lab")
    assert by_stage["reply"].startswith("250 2.0.0 Ok: queued as")
    message = lab.mail_to(to)
    assert message["Subject"] == "doormail test e-mail from doormail"
    assert "Authenticated sender: lab@smtp-lab" in str(message["Received"])
    snapshot = attachments(message)["snapshot-1.jpg"]
    assert snapshot.startswith(b"\xff\xd8")  # a JPEG


def test_wrong_password_through_the_api_ends_with_the_535_hint(
    lab: Lab, service: Service, api: TestClient
) -> None:
    service.certificates.put("ca1", lab.ca.read_text())
    body = {"to": recipient(), "smtp": submission(lab, password="wrong-password")}
    status = finished(api, api.post("/api/smtp/test", json=body).json()["id"])
    assert status["state"] == "failed"
    assert status["log"][-2]["stage"] == "auth" and "535" in status["log"][-2]["message"]
    assert status["log"][-1] == {**status["log"][-1], "stage": "hint", "message": AUTH_HINT}


def _configured(data_dir: Path, lab: Lab, **smtp: Any) -> None:
    service = build_service(Paths.resolve(str(data_dir)))
    service.certificates.put("ca1", lab.ca.read_text())
    patch = {"smtp": {**submission(lab), **smtp}}
    service.settings.save(apply_patch(service.settings.load(), patch))


def _test_email(data_dir: Path, to: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "doormail", "test-email", "--to", to, "--data", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_doormail_test_email_prints_each_stage_and_exits_0(lab: Lab, tmp_path: Path) -> None:
    _configured(tmp_path / "data", lab)
    to = recipient()
    done = _test_email(tmp_path / "data", to)
    assert done.returncode == 0, done.stdout + done.stderr
    for stage in ("resolving", "connecting", "tls", "ehlo", "auth", "mail", "rcpt", "data"):
        assert f" {stage} " in done.stdout
    assert "250 2.0.0 Ok: queued as" in done.stdout
    assert "snapshot-1.jpg" in attachments(lab.mail_to(to))


def test_doormail_test_email_exits_1_with_the_hint(lab: Lab, tmp_path: Path) -> None:
    _configured(tmp_path / "data", lab, port=lab.plain, security="tls", username="")
    done = _test_email(tmp_path / "data", recipient())
    assert done.returncode == 1
    said = " ".join(done.stdout.split())
    assert f"port {lab.plain} speaks plain SMTP: set smtp.security to starttls" in said
