"""Every kind of mail doormail sends, as SpamAssassin (Debian's, local tests only) scores it:
missed and answered call, valid and denied access of each type, each device event, the test
e-mail, send-email, the digest and the burst summary, with and without snapshots — each at
most 1.0, and each free of the defects the email package finds when it parses it. The test
prints the table of scores."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable, Iterator
from email.message import Message
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from doormail.app import Service
from doormail.web.app import create_app
from tests.conftest import ADMIN_PASSWORD, basic_auth, free_port
from tests.every_kind import (
    Clock,
    apply_and_test_bytes,
    clocked_service,
    make_burst_summary,
    make_digest,
    make_every_kind,
)
from tests.spamassassin import Score

pytestmark = pytest.mark.integration

MAX_SCORE = 1.0


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(data_dir: Path, clock: Clock) -> Service:
    return clocked_service(data_dir, clock)


@pytest.fixture
def api(service: Service) -> Iterator[TestClient]:
    with TestClient(create_app(service), headers=basic_auth("admin", ADMIN_PASSWORD)) as client:
        smtp = {
            "enabled": True,
            "server": "127.0.0.1",
            "port": free_port(),
            "security": "none",
            "from": "door@example.org",
        }
        # Nothing listens: every mail stays in the outbox, where its bytes are read.
        reply = client.patch("/api/config", json={"device": {"name": "Front door"}, "smtp": smtp})
        assert reply.status_code == 200, reply.text
        yield client


def outbox_bytes(api: TestClient, outbox_id: str) -> bytes:
    reply = api.get(f"/api/outbox/{outbox_id}/message")
    assert reply.status_code == 200
    return reply.content


def defects(data: bytes) -> list[str]:
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    found: list[str] = []
    part: Message
    for part in parsed.walk():
        found += [f"{part.get_content_type()}: {defect!r}" for defect in part.defects]
    return found


def test_every_kind_of_mail_scores_at_most_one_and_parses_without_defects(
    api: TestClient, service: Service, clock: Clock, spamassassin: Callable[[bytes], Score]
) -> None:
    mails: dict[str, bytes] = {}
    for pictures in (False, True):
        suffix = "+snapshots" if pictures else ""
        for made in make_every_kind(api, snapshots=pictures):
            mails[made.kind + suffix] = outbox_bytes(api, made.outbox_id)
        for made in (
            make_digest(api, service, clock, snapshots=pictures),
            make_burst_summary(api, service, clock, snapshots=pictures),
        ):
            mails[made.kind + suffix] = outbox_bytes(api, made.outbox_id)
    mails["test_email+snapshots"] = apply_and_test_bytes(service, "installer@example.com")
    table = {kind: spamassassin(data) for kind, data in sorted(mails.items())}
    print("\nSpamAssassin score per kind of mail (local tests, Bayes off):")
    for kind, scored in table.items():
        print(f"  {kind:34} {scored.line()}")
    for kind, data in mails.items():
        assert defects(data) == [], kind
    too_high = {kind: s.line() for kind, s in table.items() if s.total > MAX_SCORE}
    assert too_high == {}
