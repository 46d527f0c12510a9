"""The intake: mails queued with the event in the outbox, the reply, an event id seen before
answered with its first result, the ringing time of a call remembered for its snapshots, and a
Send E-Mail order queued without an event row."""

from __future__ import annotations

import email
from email.message import Message
from typing import Any

import pytest
from sqlalchemy import select

from doormail import rules
from doormail.app import Service
from doormail.events import EventError
from doormail.settings import apply_patch
from doormail.sources import posted_events
from doormail.store import tables
from tests.conftest import RecordingCamera


async def handle(service: Service, body: object) -> list[dict[str, Any]]:
    """The replies to a body of `POST /api/events`, always as a list."""
    replies = await posted_events.take(service.intake.submit, body)
    return replies if isinstance(replies, list) else [replies]


def queued(service: Service, event_id: str) -> list[Message]:
    with service.engine.connect() as connection:
        ids = (
            connection.execute(
                select(tables.outbox.c.id)
                .where(tables.outbox.c.event_id == event_id)
                .order_by(tables.outbox.c.recipient)
            )
            .scalars()
            .all()
        )
    return [email.message_from_bytes(service.outbox.message(i)) for i in ids]


async def test_each_mail_is_queued_before_the_event_is_answered(configured: Service) -> None:
    [reply] = await handle(configured,
        {"type": "call.ended", "called": "101", "answered": False, "id": "call-1"}
    )
    assert reply["event_id"] == "call-1"
    assert reply["reason"] is None
    assert [(m["to"], m["status"]) for m in reply["emails"]] == [
        ("alice@example.com", "queued"),
        ("a@work.example", "queued"),
    ]
    for item in reply["emails"]:
        stored = configured.outbox.get(item["id"])
        assert stored is not None and stored.to == item["to"] and stored.kind == "call"
    messages = queued(configured, "call-1")
    assert [m["To"] for m in messages] == ["a@work.example", "alice@example.com"]
    assert all(m["Subject"].startswith("Front door: call to 101") for m in messages)
    assert all(m["X-Doormail-Event"] == "call-1" for m in messages)


async def test_an_event_seen_before_gets_the_earlier_result_and_no_new_mail(
    configured: Service,
) -> None:
    event = {"type": "call.ended", "called": "999", "answered": False, "id": "call-2"}
    first = await handle(configured, event)
    again = await handle(configured, {**event, "called": "101"})
    assert again == first
    assert len(queued(configured, "call-2")) == 1
    received = configured.metrics.events_received.labels(type="call.ended")._value.get()
    assert received == 1


async def test_no_mail_is_answered_with_the_reason(configured: Service) -> None:
    [reply] = await handle(configured,
        {"type": "call.ended", "called": "101", "answered": True}
    )
    assert reply["emails"] == []
    assert reply["reason"] == "email_on_call.send is missed and the call was answered"
    assert len(reply["event_id"]) == 32
    with configured.engine.connect() as connection:
        assert (
            connection.execute(
                select(tables.events.c.type).where(tables.events.c.id == reply["event_id"])
            ).scalar()
            == "call.ended"
        )


async def test_an_array_in_is_an_array_out(configured: Service) -> None:
    replies = await handle(configured,
        [
            {"type": "access", "auth_type": "card", "auth_id": "DEADBEEF01"},
            {"type": "device.rebooted"},
        ]
    )
    assert [r["emails"][0]["to"] if r["emails"] else r["reason"] for r in replies] == [
        "security@example.com",
        "email_on_event.device_rebooted.enabled is false",
    ]


async def test_a_bad_event_in_an_array_takes_none_of_them(configured: Service) -> None:
    with pytest.raises(EventError) as error:
        await handle(configured,
            [
                {"type": "access", "auth_type": "card", "auth_id": "DEADBEEF01", "id": "a-1"},
                {"type": "call.ended", "called": "101"},
            ]
        )
    assert error.value.field == "events[1].answered"
    assert queued(configured, "a-1") == []


async def test_call_snapshots_span_from_its_ringing_to_its_end(
    configured: Service, camera: RecordingCamera
) -> None:
    snapshots = {"attach": True, "count": 3, "resolution": "320x240"}
    patch = {"email_on_call": {"snapshots": snapshots}}
    configured.settings.save(apply_patch(configured.settings.load(), patch))
    ringing = {"type": "call.ringing", "call_id": "7", "called": "101"}
    await handle(configured, {**ringing, "at": "2025-03-14T09:26:40+00:00"})
    [reply] = await handle(configured,
        {
            "type": "call.ended",
            "call_id": "7",
            "called": "101",
            "answered": False,
            "at": "2025-03-14T09:26:53+00:00",
            "id": "call-7",
        }
    )
    assert camera.asked == [(1741944400.0, 1741944413.0, 3, 320, 240)]  # once for both mails
    for message in queued(configured, "call-7"):
        names = [part.get_filename() for part in message.walk() if part.get_filename()]
        assert names == ["snapshot-1.jpg", "snapshot-2.jpg", "snapshot-3.jpg"]
    assert len(reply["emails"]) == 2
    with configured.engine.connect() as connection:
        assert connection.execute(select(tables.calls)).all() == []  # forgotten once ended


async def test_a_ringing_call_is_remembered_per_device(configured: Service) -> None:
    await handle(configured,
        [
            {"type": "call.ringing", "call_id": "1", "device": "Gate", "called": "101"},
            {"type": "call.ringing", "call_id": "1", "called": "101"},
        ]
    )
    with configured.engine.connect() as connection:
        rows = connection.execute(select(tables.calls.c.device, tables.calls.c.call_id)).all()
    assert sorted(rows) == [("Front door", "1"), ("Gate", "1")]


async def test_a_send_email_order_is_queued_without_an_event_row(configured: Service) -> None:
    order = rules.SendEmail(("alice@example.com", "desk@example.com"), subject="Parcel")
    accepted = await configured.intake.send_email(order)
    assert accepted.event_id.startswith("send-email-")
    assert [m["To"] for m in queued(configured, accepted.event_id)] == [
        "alice@example.com",
        "desk@example.com",
    ]
    with configured.engine.connect() as connection:
        assert connection.execute(select(tables.events.c.id)).all() == []


async def test_an_events_commit_holds_the_write_lock_for_the_metrics_to_show(
    configured: Service,
) -> None:
    await handle(configured, {"type": "call.ended", "called": "101", "answered": False})
    await handle(configured, {"type": "device.rebooted"})
    registry = configured.metrics.registry
    assert registry.get_sample_value("doormail_commit_lock_seconds_count") == 2
    assert 0 < (registry.get_sample_value("doormail_commit_lock_seconds_sum") or 0) < 1
