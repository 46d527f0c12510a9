"""The way in for events: mails queued with the event in the outbox, the reply, an event id seen
before answered with its first result, the ringing time of a call remembered for its snapshots."""

from __future__ import annotations

import email
from email.message import Message
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from doormail.app import Service
from doormail.events import EventError
from doormail.settings import apply_patch
from doormail.store import tables
from doormail.users.model import User
from tests.conftest import RecordingCamera

CONFIG: dict[str, Any] = {
    "device": {"name": "Front door"},
    "smtp": {"enabled": True, "server": "127.0.0.1", "from": "door@example.org"},
    "email_on_call": {"send": "missed", "default_to": "desk@example.com"},
    "email_on_access": {"send": "denied", "default_to": "security@example.com"},
}


@pytest.fixture
def configured(service: Service) -> Service:
    service.settings.save(apply_patch(service.settings.load(), CONFIG))
    service.users.create(
        User(
            id="u-alice", name="Alice", email="alice@example.com, a@work.example", numbers=("101",)
        )
    )
    return service


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
    [reply] = await configured.intake.handle(
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
    first = await configured.intake.handle(event)
    again = await configured.intake.handle({**event, "called": "101"})
    assert again == first
    assert len(queued(configured, "call-2")) == 1
    received = configured.metrics.events_received.labels(type="call.ended")._value.get()
    assert received == 1


async def test_no_mail_is_answered_with_the_reason(configured: Service) -> None:
    [reply] = await configured.intake.handle(
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
    replies = await configured.intake.handle(
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
        await configured.intake.handle(
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
    await configured.intake.handle({**ringing, "at": "2025-03-14T09:26:40+00:00"})
    [reply] = await configured.intake.handle(
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
    await configured.intake.handle(
        [
            {"type": "call.ringing", "call_id": "1", "device": "Gate", "called": "101"},
            {"type": "call.ringing", "call_id": "1", "called": "101"},
        ]
    )
    with configured.engine.connect() as connection:
        rows = connection.execute(select(tables.calls.c.device, tables.calls.c.call_id)).all()
    assert sorted(rows) == [("Front door", "1"), ("Gate", "1")]


# --- POST /api/events ------------------------------------------------------------------------


def test_post_events_answers_202_once_the_mails_are_queued(
    configured: Service, api: TestClient
) -> None:
    reply = api.post("/api/events", json={"type": "call.ended", "called": "101", "answered": False})
    assert reply.status_code == 202
    body = reply.json()
    assert set(body) == {"event_id", "emails", "reason"}
    assert {mail["to"] for mail in body["emails"]} == {"alice@example.com", "a@work.example"}
    assert all(set(mail) == {"id", "to", "status"} for mail in body["emails"])


def test_post_events_array_in_array_out(configured: Service, api: TestClient) -> None:
    reply = api.post(
        "/api/events", json=[{"type": "device.rebooted"}, {"type": "tamper.activated"}]
    )
    assert reply.status_code == 202
    assert [r["reason"] for r in reply.json()] == [
        "email_on_event.device_rebooted.enabled is false",
        "email_on_event.tamper.enabled is false",
    ]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (
            b'[{"type": "device.rebooted"}, {"type": "call.ended", "called": "1"}]',
            422,
            "events[1].answered",
        ),
        (b'{"type": "access", "auth_type": "iris", "auth_id": "1"}', 422, "auth_type"),
        (b'{"type": ', 400, "body"),
    ],
)
def test_post_events_names_the_bad_field(
    api: TestClient, body: bytes, status: int, field: str
) -> None:
    reply = api.post("/api/events", content=body, headers={"content-type": "application/json"})
    assert reply.status_code == status
    assert reply.json()["error"]["field"] == field


def test_post_events_needs_authentication(anonymous: TestClient) -> None:
    assert anonymous.post("/api/events", json={"type": "device.rebooted"}).status_code == 401
