"""`/api/dkim`: a key pair made for the configured domain and selector, its private half kept
as a secret, its TXT record shown, the check against DNS; and every kind of mail, signed as the
worker signs it, verifies with the published key."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

import dkim
from doormail import dkimkey
from doormail.app import Service
from doormail.web.app import create_app
from tests.conftest import ADMIN_PASSWORD, basic_auth, free_port
from tests.every_kind import KINDS, make_every_kind
from tests.test_dkimkey import published

DKIM = {"domain": "example.org", "selector": "door2026"}


class Zone:
    """The DNS the check route reads: names and their TXT values."""

    def __init__(self) -> None:
        self.records: dict[str, str] = {}

    def txt(self, name: str) -> str | None:
        return self.records.get(name)


@pytest.fixture
def zone() -> Zone:
    return Zone()


@pytest.fixture
def dkim_api(service: Service, zone: Zone) -> Iterator[TestClient]:
    """The API of a service whose DKIM check reads `zone`."""
    looking_up = dataclasses.replace(service, dkim_lookup=zone.txt)
    auth = basic_auth("admin", ADMIN_PASSWORD)
    with TestClient(create_app(looking_up), headers=auth) as client:
        yield client


def test_a_key_needs_the_domain_and_selector_first(dkim_api: TestClient) -> None:
    reply = dkim_api.post("/api/dkim/key", json={"algorithm": "rsa"})
    assert reply.status_code == 422
    assert reply.json()["error"]["field"] == "smtp.dkim.domain"


def test_an_unknown_algorithm_is_refused_at_its_field(dkim_api: TestClient) -> None:
    dkim_api.patch("/api/config", json={"smtp": {"dkim": DKIM}})
    reply = dkim_api.post("/api/dkim/key", json={"algorithm": "dsa"})
    assert reply.status_code == 422
    assert reply.json()["error"]["errors"][0]["field"] == "algorithm"


@pytest.mark.parametrize("algorithm", dkimkey.ALGORITHMS)
def test_a_new_key_is_stored_as_a_secret_and_its_record_shown(
    dkim_api: TestClient, service: Service, algorithm: str
) -> None:
    dkim_api.patch("/api/config", json={"smtp": {"dkim": DKIM}})
    reply = dkim_api.post("/api/dkim/key", json={"algorithm": algorithm})
    assert reply.status_code == 200, reply.text
    record = reply.json()
    assert record["dns_name"] == "door2026._domainkey.example.org"
    assert record["dns_txt"].startswith(f"v=DKIM1; k={algorithm}; p=")
    assert (record["domain"], record["selector"]) == ("example.org", "door2026")
    stored = service.settings.load().smtp.dkim.private_key
    assert "PRIVATE KEY" in stored and stored not in reply.text
    shown = dkim_api.get("/api/config").json()["smtp"]["dkim"]
    assert shown["private_key_set"] is True and "private_key" not in shown
    assert dkim_api.get("/api/dkim/key").json() == record


def test_check_says_not_published_yet_then_that_it_matches(
    dkim_api: TestClient, zone: Zone
) -> None:
    assert dkim_api.get("/api/dkim/check").status_code == 404
    dkim_api.patch("/api/config", json={"smtp": {"dkim": DKIM}})
    record = dkim_api.post("/api/dkim/key", json={"algorithm": "ed25519"}).json()
    absent = dkim_api.get("/api/dkim/check").json()
    assert (absent["matches"], absent["message"]) == (False, "not published yet")
    zone.records[record["dns_name"]] = record["dns_txt"]
    found = dkim_api.get("/api/dkim/check").json()
    assert found["matches"] is True and found["published"] == record["dns_txt"]
    dkim_api.post("/api/dkim/key", json={"algorithm": "ed25519"})  # a new key: DNS is stale
    stale = dkim_api.get("/api/dkim/check").json()
    assert stale["matches"] is False and "another key" in stale["message"]


@pytest.mark.parametrize("snapshots", [False, True], ids=["no-snapshots", "snapshots"])
def test_every_kind_of_mail_verifies_with_the_published_key(
    dkim_api: TestClient, service: Service, snapshots: bool
) -> None:
    smtp = {
        "enabled": True,
        "server": "127.0.0.1",
        "port": free_port(),
        "security": "none",
        "from": "door@example.org",
        "dkim": {**DKIM, "enabled": False},
    }
    assert dkim_api.patch("/api/config", json={"smtp": smtp}).status_code == 200
    dkim_api.post("/api/dkim/key", json={"algorithm": "rsa"})
    dkim_api.patch("/api/config", json={"smtp": {"dkim": {"enabled": True}}})
    settings = service.settings.load().smtp.dkim
    dns = published(dkimkey.dns_record(settings))
    made = make_every_kind(dkim_api, snapshots=snapshots)
    assert [m.kind for m in made] == list(KINDS)
    for mail in made:
        data = dkim_api.get(f"/api/outbox/{mail.outbox_id}/message").content
        assert b"DKIM-Signature" not in data  # the outbox keeps the unsigned bytes
        signed = dkimkey.sign(data, settings)
        assert dkim.verify(signed, dnsfunc=dns), mail.kind
        assert not dkim.verify(signed + b"a line added\r\n", dnsfunc=dns), mail.kind
