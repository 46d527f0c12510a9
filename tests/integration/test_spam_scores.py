"""Every kind of mail doormail sends, as SpamAssassin (Debian's, local tests only) scores it:
missed and answered call, valid and denied access of each type, each device event, the test
e-mail, send-email, the digest and the burst summary, with and without snapshots — each at
most 1.0, and each free of the defects the email package finds when it parses it. The test
prints the table of scores."""

from __future__ import annotations

import asyncio
import email
import email.policy
import math
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from doormail.app import Paths, Service, build_service
from doormail.applytest import apply_test_mail
from doormail.pipeline import snapshots as taking
from doormail.pipeline.prepare import prepare_message
from doormail.web.app import create_app
from tests.conftest import ADMIN_PASSWORD, basic_auth, free_port
from tests.every_kind import address, make_every_kind
from tests.spamassassin import Score

pytestmark = pytest.mark.integration

HOUR = 3600.0
MAX_SCORE = 1.0


class Clock:
    def __init__(self) -> None:
        self.now = math.floor(time.time() / HOUR) * HOUR + 2 * HOUR + 10

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(data_dir: Path, clock: Clock) -> Service:
    built = build_service(Paths.resolve(str(data_dir)), clock=clock)
    built.accounts.ensure_admin(ADMIN_PASSWORD)
    return built


@pytest.fixture
def api(service: Service) -> Iterator[TestClient]:
    with TestClient(create_app(service), headers=basic_auth("admin", ADMIN_PASSWORD)) as client:
        smtp = {"enabled": True, "server": "127.0.0.1", "port": free_port(), "security": "none",
                "from": "door@example.org"}
        # Nothing listens: every mail stays in the outbox, where its bytes are read.
        reply = client.patch("/api/config", json={"device": {"name": "Front door"}, "smtp": smtp})
        assert reply.status_code == 200, reply.text
        yield client


def outbox_bytes(api: TestClient, outbox_id: str) -> bytes:
    reply = api.get(f"/api/outbox/{outbox_id}/message")
    assert reply.status_code == 200
    return reply.content


def apply_and_test_mail(service: Service) -> bytes:
    settings = service.settings.load()
    mail = apply_test_mail(settings, "installer@example.com", time.time())
    pictures = asyncio.run(taking.take(service.camera, [mail]))
    at = datetime.now(UTC)
    return prepare_message(mail, settings, pictures, event_id="test-0", at=at).data


def digest(api: TestClient, service: Service, clock: Clock, pictures: bool) -> bytes:
    """A digest of two held tamper mails (the cap is one an hour)."""
    to = address("digest")
    tab = {"to": to, "tamper": {"enabled": True},
           "snapshots": {"attach": pictures, "count": 1, "resolution": "640x480"}}
    api.patch("/api/config", json={"email_on_event": tab,
                                   "limits": {"per_recipient_per_hour": 1}})
    for _ in range(3):
        assert api.post("/api/events", json={"type": "tamper.activated"}).status_code == 202
        clock.now += 60
    clock.now = math.floor(clock.now / HOUR) * HOUR + HOUR + 1
    return _made(api, service, to, "digest")


def burst_summary(api: TestClient, service: Service, clock: Clock, pictures: bool) -> bytes:
    """A burst summary of two denied cards (the burst is one)."""
    to = address("burst")
    tab = {"send": "denied", "default_to": to,
           "snapshots": {"attach": pictures, "count": 1, "resolution": "640x480"}}
    api.patch("/api/config", json={"email_on_access": tab,
                                   "limits": {"per_recipient_per_hour": 0,
                                              "access_denied_burst": 1}})
    for _ in range(3):
        event = {"type": "access", "auth_type": "card", "auth_id": "00DEADBEEF",
                 "device": "Gate"}
        assert api.post("/api/events", json=event).status_code == 202
        clock.now += 1
    clock.now += 61
    summary = _made(api, service, to, "burst_summary")
    api.patch("/api/config", json={"limits": {"access_denied_burst": 0}})
    return summary


def _made(api: TestClient, service: Service, to: str, kind: str) -> bytes:
    service.digests.make_due()
    [item] = [i for i in service.outbox.page(limit=500).items if i.to == to and i.kind == kind]
    return outbox_bytes(api, item.id)


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
        mails["digest" + suffix] = digest(api, service, clock, pictures)
        mails["burst_summary" + suffix] = burst_summary(api, service, clock, pictures)
    mails["test_email+snapshots"] = apply_and_test_mail(service)
    table = {kind: spamassassin(data) for kind, data in sorted(mails.items())}
    print("\nSpamAssassin score per kind of mail (local tests, Bayes off):")
    for kind, scored in table.items():
        print(f"  {kind:34} {scored.line()}")
    for kind, data in mails.items():
        assert defects(data) == [], kind
    too_high = {kind: s.line() for kind, s in table.items() if s.total > MAX_SCORE}
    assert too_high == {}
