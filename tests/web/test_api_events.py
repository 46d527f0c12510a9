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


def test_get_events_lists_each_event_with_its_mails_or_its_reason(
    configured: Service, api: TestClient
) -> None:
    mailed = api.post(
        "/api/events", json={"type": "call.ended", "called": "101", "answered": False}
    )
    api.post("/api/events", json={"type": "call.ended", "called": "101", "answered": True})
    reply = api.get("/api/events")
    assert reply.status_code == 200
    refused, kept = reply.json()["items"]
    assert set(kept) == {"event_id", "type", "at", "device", "fields", "emails", "reason"}
    assert kept["event_id"] == mailed.json()["event_id"]
    assert {m["id"] for m in kept["emails"]} == {m["id"] for m in mailed.json()["emails"]}
    assert refused["reason"] == "email_on_call.send is missed and the call was answered"
    assert reply.json()["next"] is None
    none = api.get("/api/events", params={"outcome": "none", "type": "call.ended"}).json()
    assert [e["event_id"] for e in none["items"]] == [refused["event_id"]]


def test_get_events_by_address_says_whether_each_mailed_it(
    configured: Service, api: TestClient
) -> None:
    api.post("/api/events", json={"type": "call.ended", "called": "101", "answered": False})
    api.post("/api/events", json={"type": "call.ended", "called": "101", "answered": True})
    items = api.get("/api/events", params={"address": "a@work.example"}).json()["items"]
    assert [item["for_address"]["mailed"] for item in items] == [False, True]
    assert items[0]["for_address"]["why"].endswith("the call was answered")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-11-29T10:00:00"}, "since"),
        ({"type": "call"}, "type"),
        ({"outcome": "sometimes"}, "outcome"),
        ({"cursor": "x"}, "cursor"),
    ],
)
def test_get_events_names_the_bad_parameter(
    api: TestClient, params: dict[str, str], field: str
) -> None:
    reply = api.get("/api/events", params=params)
    assert reply.status_code == 422
    assert reply.json()["error"]["field"] == field
