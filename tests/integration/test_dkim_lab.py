"""DKIM end to end: every kind of mail (the digest and burst summary too, with a clock the test
moves), signed by the worker right before sending, passes through the Postfix lab and still
verifies, read back from its Maildir, with the published key; so does the Apply & Test e-mail,
whose log reports the signature."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import dkim
from doormail import dkimkey
from doormail.app import Service
from doormail.web.app import create_app
from tests.conftest import ADMIN_PASSWORD, Lab, basic_auth
from tests.every_kind import (
    Clock,
    address,
    clocked_service,
    make_burst_summary,
    make_digest,
    make_every_kind,
)
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


def verified(lab: Lab, to: str, dns: Callable[..., bytes | None]) -> bool:
    # Postfix put its Return-Path, Delivered-To and Received lines on top (the signature
    # covers none of them), and Maildir stores LF line ends.
    data = delivered_bytes(lab, to).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return bool(dkim.verify(data, dnsfunc=dns)) and not dkim.verify(data + b"x\r\n", dnsfunc=dns)


@pytest.fixture
def clocked_api(data_dir: Path) -> Iterator[tuple[TestClient, Service, Clock]]:
    clock = Clock()
    service = clocked_service(data_dir, clock)
    with TestClient(create_app(service), headers=basic_auth("admin", ADMIN_PASSWORD)) as client:
        yield client, service, clock


def test_the_digest_and_the_burst_summary_verify_after_the_lab_delivered_them(
    clocked_api: tuple[TestClient, Service, Clock], lab: Lab
) -> None:
    api, service, clock = clocked_api
    configure(api, lab)
    api.patch("/api/config", json={"smtp": {"dkim": {"domain": "example.org", "selector": "lab"}}})
    api.post("/api/dkim/key", json={"algorithm": "rsa"})
    api.patch("/api/config", json={"smtp": {"dkim": {"enabled": True}}})
    dns = published(dkimkey.dns_record(service.settings.load().smtp.dkim))
    for snapshots in (False, True):
        for made in (
            make_digest(api, service, clock, snapshots=snapshots),
            make_burst_summary(api, service, clock, snapshots=snapshots),
        ):
            service.worker.notify()
            assert verified(lab, made.to, dns), made.kind


def test_apply_and_test_reports_the_signature(api: TestClient, service: Service, lab: Lab) -> None:
    configure(api, lab)
    api.patch("/api/config", json={"smtp": {"dkim": {"domain": "example.org", "selector": "lab"}}})
    api.post("/api/dkim/key", json={"algorithm": "ed25519"})
    api.patch("/api/config", json={"smtp": {"dkim": {"enabled": True}}})
    to = address("apply-test")
    started = api.post("/api/smtp/test", json={"to": to})
    assert started.status_code == 202
    deadline = time.monotonic() + 20
    while (run := api.get(f"/api/smtp/test/{started.json()['id']}").json())["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert run["state"] == "sent", run
    [line] = [entry["message"] for entry in run["log"] if entry["stage"] == "dkim"]
    assert line.startswith("signed: a=ed25519-sha256, c=relaxed/relaxed, d=example.org, s=lab,")
    assert "lab._domainkey.example.org" in line
    dns = published(dkimkey.dns_record(service.settings.load().smtp.dkim))
    assert verified(lab, to, dns)
