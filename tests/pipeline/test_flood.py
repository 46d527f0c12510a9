"""Flood control (SPEC section 9), with a clock the test moves and doormail restarted in the
middle: 30 mails to one address in an hour with a cap of 10 arrive as 10 mails and one digest
holding the other 20; a burst of 50 denied cards in 30 s with a burst of 5 arrives as 5 mails
and one summary of the other 45. Held mails are durable and shown as `held` meanwhile."""

from __future__ import annotations

import email
import email.policy
import math
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from doormail.app import Paths, Service, build_service
from doormail.events import parse_event
from doormail.settings import apply_patch
from doormail.store import metadata
from tests.scripted_smtp import Scripted, listening

HOUR = 3600.0


class Clock:
    """Now, as the test says: a few seconds into a coming hour, moved by hand."""

    def __init__(self) -> None:
        self.now = math.floor(time.time() / HOUR) * HOUR + 2 * HOUR + 10

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def smtp_server() -> Iterator[tuple[Scripted, int]]:
    handler = Scripted()
    with listening(handler) as port:
        yield handler, port


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str | None]:
    """The data folder and the database URL doormail is started with: its own SQLite in the
    folder, or an emptied PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "data", None
    shared: Engine = request.getfixturevalue("postgres_engine")
    with shared.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            if table.name != "alembic_version":
                connection.execute(table.delete())
    return tmp_path / "data", shared.url.render_as_string(hide_password=False)


def start(
    database: tuple[Path, str | None], clock: Clock, config: dict[str, Any] | None = None
) -> Service:
    """doormail (its parts, without the web side) on `database`, as a new process builds it."""
    service = build_service(Paths.resolve(str(database[0]), database[1]), clock=clock)
    if config is not None:
        service.settings.save(apply_patch(service.settings.load(), config))
    return service


def stop(service: Service) -> None:
    service.engine.dispose()


def config(port: int, **tabs: Any) -> dict[str, Any]:
    smtp = {
        "enabled": True,
        "server": "127.0.0.1",
        "port": port,
        "security": "none",
        "from": "door@example.org",
    }
    return {"device": {"name": "Front door"}, "smtp": smtp, **tabs}


async def post(service: Service, event: dict[str, Any]) -> list[dict[str, Any]]:
    accepted = await service.intake.submit(parse_event({"id": uuid.uuid4().hex, **event}))
    emails: list[dict[str, Any]] = accepted.reply()["emails"]
    return emails


def received(handler: Scripted) -> list[EmailMessage]:
    parsed = [
        email.message_from_bytes(data, policy=email.policy.default) for data in handler.received
    ]
    return [m for m in parsed if isinstance(m, EmailMessage)]


def listed(message: EmailMessage) -> list[str]:
    """The lines of a digest: one per held mail."""
    body = message.get_body(("plain",))
    assert body is not None
    return [line for line in body.get_content().splitlines() if " — " in line or " -- " in line]


async def test_thirty_mails_in_an_hour_with_a_cap_of_ten_are_ten_mails_and_one_digest(
    database: tuple[Path, str | None], clock: Clock, smtp_server: tuple[Scripted, int]
) -> None:
    handler, port = smtp_server
    tamper = {
        "to": "guard@example.com",
        "tamper": {"enabled": True},
        "snapshots": {"attach": True, "count": 1, "resolution": "320x240"},
    }
    tabs = {"email_on_event": tamper, "limits": {"per_recipient_per_hour": 10}}
    first = start(database, clock, config(port, **tabs))
    statuses = []
    for _ in range(15):
        statuses += [m["status"] for m in await post(first, {"type": "tamper.activated"})]
        clock.now += 60
    assert statuses == ["queued"] * 10 + ["held"] * 5
    await first.worker.drain()
    stop(first)  # doormail restarts with 5 mails held

    second = start(database, clock)
    for _ in range(15):
        statuses += [m["status"] for m in await post(second, {"type": "tamper.activated"})]
        clock.now += 60
    assert statuses[15:] == ["held"] * 15
    assert len(second.outbox.page(status="held", limit=100).items) == 20
    assert second.digests.make_due() == 0  # the hour has not ended
    clock.now = math.floor(clock.now / HOUR) * HOUR + HOUR + 1
    assert second.digests.make_due() == 1
    assert second.digests.make_due() == 0  # made once
    await second.worker.drain()

    messages = received(handler)
    assert len(messages) == 11
    *mails, digest = messages
    assert all("tamper switch" in str(m["Subject"]).lower() for m in mails)
    assert digest["Subject"] == "Front door: 20 more notifications this hour"
    lines = listed(digest)
    assert len(lines) == 20 and all("tamper switch" in line.lower() for line in lines)
    pictures = [p.get_filename() for p in digest.iter_attachments()]
    assert pictures == [f"snapshot-{n}.jpg" for n in range(1, 21)]
    counts = second.outbox.counts()
    assert (counts["held"], counts["sent"]) == (0, 31)  # each held mail ends as its digest did
    stop(second)


async def test_fifty_denied_cards_in_thirty_seconds_with_a_burst_of_five_are_five_mails_and_one_summary(
    database: tuple[Path, str | None], clock: Clock, smtp_server: tuple[Scripted, int]
) -> None:
    handler, port = smtp_server
    access = {"send": "denied", "default_to": "security@example.com"}
    tabs = {"email_on_access": access, "limits": {"access_denied_burst": 5}}
    first = start(database, clock, config(port, **tabs))
    card = {"type": "access", "auth_type": "card", "auth_id": "00DEADBEEF"}
    statuses = []
    for _ in range(25):
        statuses += [m["status"] for m in await post(first, card)]
        clock.now += 0.6
    assert statuses == ["queued"] * 5 + ["held"] * 20
    await first.worker.drain()
    stop(first)

    second = start(database, clock)
    for _ in range(25):
        statuses += [m["status"] for m in await post(second, card)]
        clock.now += 0.6
    assert statuses[25:] == ["held"] * 25
    clock.now += 30
    assert second.digests.make_due() == 0  # not yet a minute without a denied attempt
    clock.now += 31
    assert second.digests.make_due() == 1
    await second.worker.drain()

    messages = received(handler)
    assert len(messages) == 6
    *mails, summary = messages
    assert all(
        "Invalid" in str(m["Subject"]) or "denied" in str(m["Subject"]).lower() for m in mails
    )
    assert summary["Subject"] == "Front door: 45 more denied accesses"
    assert len(listed(summary)) == 45
    assert list(summary.iter_attachments()) == []  # the attempts had no pictures
    # The next denied attempt, over a minute later, is mailed as usual.
    clock.now += 120
    assert [m["status"] for m in await post(second, card)] == ["queued"]
    stop(second)


async def test_a_burst_that_goes_on_is_summarised_ten_minutes_after_its_first_collected(
    database: tuple[Path, str | None], clock: Clock, smtp_server: tuple[Scripted, int]
) -> None:
    _, port = smtp_server
    access = {"send": "denied", "default_to": "security@example.com"}
    service = start(
        database, clock, config(port, email_on_access=access, limits={"access_denied_burst": 2})
    )
    card = {"type": "access", "auth_type": "card", "auth_id": "00DEADBEEF"}
    for _ in range(3):
        await post(service, card)
    collected_from = clock.now
    while clock.now < collected_from + 600:
        clock.now += 20
        await post(service, card)
        if service.digests.make_due():
            break
    assert collected_from + 600 <= clock.now < collected_from + 600 + 20 + 1
    stop(service)
