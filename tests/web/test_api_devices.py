"""`/api/devices` (SPEC 11): create, read, replace, change and delete a device, bad fields by
name, write-only secrets; an event's `device` selects the device's name, time zone and
licenses, an unknown one is refused when devices exist; licensing's reason and code 5."""

from __future__ import annotations

from fastapi.testclient import TestClient

from doormail.app import Service
from doormail.pipeline.intake import LICENSE_REASON

FRONT = {
    "id": "front-door",
    "name": "Front door",
    "serial": "54-0880-2424",
    "timezone": "Europe/Prague",
    "licenses": ["gold"],
    "source": {"kind": "2n", "url": "http://192.0.2.10", "username": "api", "password": "pw"},
}
DEVICE_EVENT = {"type": "tamper.activated", "at": "2025-05-01T10:00:00+00:00"}


def test_devices_api_crud_keeps_secrets_write_only(api: TestClient) -> None:
    created = api.post("/api/devices", json=FRONT)
    assert created.status_code == 201, created.text
    shown = created.json()
    assert shown["source"]["password_set"] is True and "password" not in shown["source"]
    assert shown["camera"]["password_set"] is False and "password" not in shown["camera"]
    assert api.get("/api/devices").json() == [shown]
    patched = api.patch("/api/devices/front-door", json={"name": "Gate"})
    assert patched.status_code == 200 and patched.json()["name"] == "Gate"
    assert patched.json()["source"]["password_set"] is True  # a secret left out is kept
    replaced = api.put("/api/devices/front-door", json={**FRONT, "source": None})
    assert replaced.json()["source"] is None
    assert api.delete("/api/devices/front-door").status_code == 204
    assert api.get("/api/devices/front-door").status_code == 404


def test_devices_api_names_the_bad_field(api: TestClient) -> None:
    cases = [
        ({**FRONT, "id": "no spaces"}, "id"),
        ({**FRONT, "licenses": ["platinum"]}, "licenses.0"),
        ({**FRONT, "timezone": "Mars/Olympus"}, "timezone"),
        ({**FRONT, "source": {"kind": "2n", "url": "ftp://x"}}, "source.url"),
        ({**FRONT, "camera": {"source": "http"}}, "camera.url"),
        ({**FRONT, "colour": "red"}, "colour"),
    ]
    for body, field in cases:
        reply = api.post("/api/devices", json=body)
        assert reply.status_code == 422, (body, reply.text)
        assert reply.json()["error"]["field"] == field, (body, reply.text)
    assert api.post("/api/devices", json=FRONT).status_code == 201
    assert api.post("/api/devices", json=FRONT).status_code == 409


def test_an_event_naming_a_device_uses_its_name(api: TestClient, configured: Service) -> None:
    api.patch(
        "/api/config",
        json={"email_on_event": {"to": "desk@example.com", "tamper": {"enabled": True}}},
    )
    assert api.post("/api/devices", json=FRONT).status_code == 201
    reply = api.post("/api/events", json={**DEVICE_EVENT, "device": "front-door"})
    assert reply.status_code == 202, reply.text
    items = configured.outbox.page(limit=10).items
    assert [item.subject for item in items] == ["Tamper switch activated at Front door"]


def test_an_event_naming_an_unknown_device_is_refused_when_devices_exist(
    api: TestClient, configured: Service
) -> None:
    assert api.post("/api/events", json={**DEVICE_EVENT, "device": "anything"}).status_code == 202
    assert api.post("/api/devices", json=FRONT).status_code == 201
    reply = api.post("/api/events", json=[DEVICE_EVENT, {**DEVICE_EVENT, "device": "back"}])
    assert reply.status_code == 422
    assert reply.json()["error"]["field"] == "events[1].device"


def test_licensing_enforced_mails_only_for_gold_or_enhanced_integration(
    api: TestClient, configured: Service
) -> None:
    api.patch(
        "/api/config",
        json={
            "licensing": {"enforce": True},
            "email_on_event": {"to": "desk@example.com", "tamper": {"enabled": True}},
        },
    )
    api.post("/api/devices", json={**FRONT, "id": "gold"})
    api.post("/api/devices", json={**FRONT, "id": "basic", "licenses": []})
    gold = api.post("/api/events", json={**DEVICE_EVENT, "device": "gold"}).json()
    basic = api.post("/api/events", json={**DEVICE_EVENT, "device": "basic"}).json()
    assert len(gold["emails"]) == 1
    assert basic["emails"] == [] and basic["reason"] == LICENSE_REASON
    unnamed = api.post("/api/events", json=DEVICE_EVENT).json()
    assert unnamed["reason"] == LICENSE_REASON  # judged by device.licenses
    sent = api.post("/api/email/send", json={"to": "a@example.com", "subject": "x"}).json()
    assert sent == {
        "success": False,
        "error": {"code": 5, "description": "function is licensed"},
    }
    api.patch("/api/config", json={"device": {"licenses": ["enhanced_integration"]}})
    assert api.post("/api/email/send", json={"to": "a@example.com", "subject": "x"}).json() == {
        "success": True
    }


def test_a_stored_password_is_not_sent_to_a_new_address(api: TestClient) -> None:
    assert api.post("/api/devices", json=FRONT).status_code == 201
    moved = {"source": {"url": "http://192.0.2.99"}}
    reply = api.patch("/api/devices/front-door", json=moved)
    assert reply.status_code == 422
    assert reply.json()["error"]["field"] == "source.password"
    moved["source"]["password"] = "new"
    assert api.patch("/api/devices/front-door", json=moved).status_code == 200


def test_an_event_of_a_device_is_dated_in_its_time_zone(
    api: TestClient, configured: Service
) -> None:
    api.patch(
        "/api/config",
        json={
            "device": {"timezone": "UTC", "datetime_format": "%Y-%m-%d %H:%M:%S %Z"},
            "email_on_event": {
                "to": "desk@example.com",
                "tamper": {"enabled": True, "subject": "$DeviceName$ $DateTime$"},
            },
        },
    )
    assert api.post("/api/devices", json=FRONT).status_code == 201
    api.post("/api/events", json={**DEVICE_EVENT, "device": "front-door"})
    api.post("/api/events", json={**DEVICE_EVENT, "id": "unnamed"})
    subjects = sorted(item.subject for item in configured.outbox.page(limit=10).items)
    assert subjects == ["Front door 2025-05-01 10:00:00 UTC", "Front door 2025-05-01 12:00:00 CEST"]
