"""DKIM end to end: every kind of mail, signed by the worker right before sending, passes
through the Postfix lab and still verifies, read back from its Maildir, with the published
key; Apply & Test reports the signature."""

from __future__ import annotations

import time

import dkim
import pytest
from fastapi.testclient import TestClient

from doormail import dkimkey
from doormail.app import Service
from tests.conftest import Lab
from tests.every_kind import make_every_kind
from tests.integration.test_event_mails_lab import configure
from tests.test_dkimkey import published

pytestmark = pytest.mark.integration


def delivered_bytes(lab: Lab, to: str, timeout: float = 20.0) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in lab.delivered():
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            if f"Delivered-To: {to}".encode() in data[:8192]:
                return data
        time.sleep(0.05)
    raise AssertionError(f"no mail for {to} in {lab.maildir}")


@pytest.mark.parametrize("algorithm", dkimkey.ALGORITHMS)
def test_every_kind_of_mail_verifies_after_the_lab_delivered_it(
    api: TestClient, service: Service, lab: Lab, algorithm: str
) -> None:
    configure(api, lab)
    api.patch("/api/config", json={"smtp": {"dkim": {"domain": "example.org", "selector": "lab"}}})
    record = api.post("/api/dkim/key", json={"algorithm": algorithm}).json()
    api.patch("/api/config", json={"smtp": {"dkim": {"enabled": True}}})
    dns = published(dkimkey.dns_record(service.settings.load().smtp.dkim))
    assert record["dns_txt"] == dkimkey.dns_record(service.settings.load().smtp.dkim).dns_txt
    for snapshots in (False, True):
        for mail in make_every_kind(api, snapshots=snapshots):
            data = delivered_bytes(lab, mail.to)
            # Postfix put its Return-Path, Delivered-To and Received lines on top; the
            # signature covers neither, and Maildir stores LF line ends.
            data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            assert dkimkey.signature_tags(data)["a"] == f"{algorithm}-sha256"
            assert dkim.verify(data, dnsfunc=dns), mail.kind
            assert not dkim.verify(data + b"changed\r\n", dnsfunc=dns), mail.kind


def test_apply_and_test_reports_the_signature(api: TestClient, lab: Lab) -> None:
    configure(api, lab)
    api.patch("/api/config", json={"smtp": {"dkim": {"domain": "example.org", "selector": "lab"}}})
    api.post("/api/dkim/key", json={"algorithm": "ed25519"})
    api.patch("/api/config", json={"smtp": {"dkim": {"enabled": True}}})
    started = api.post("/api/smtp/test", json={"to": "dkim-test@example.com"})
    assert started.status_code == 202
    deadline = time.monotonic() + 20
    while (run := api.get(f"/api/smtp/test/{started.json()['id']}").json())["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert run["state"] == "sent", run
    [line] = [entry["message"] for entry in run["log"] if entry["stage"] == "dkim"]
    assert line.startswith("signed: a=ed25519-sha256, c=relaxed/relaxed, d=example.org, s=lab,")
    assert "lab._domainkey.example.org" in line
