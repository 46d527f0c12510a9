"""`POST /api/events` over HTTP: 202 once the mails are queued, an array in and an array out,
the bad field named, and authentication."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from doormail.app import Service


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
