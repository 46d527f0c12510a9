"""`/api/config`: GET shows the document, PATCH merges, PUT replaces; atomically, naming the
first bad field, secrets write-only."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_get_shows_the_whole_document(api: TestClient) -> None:
    reply = api.get("/api/config")
    assert reply.status_code == 200
    assert set(reply.json()) >= {
        "device",
        "smtp",
        "email_on_call",
        "email_on_access",
        "email_on_event",
        "camera",
    }


def test_patch_changes_only_the_given_keys(api: TestClient) -> None:
    reply = api.patch("/api/config", json={"smtp": {"server": "mail.example.com", "port": 587}})
    assert reply.status_code == 200
    assert api.get("/api/config").json()["smtp"]["port"] == 587
    assert api.get("/api/config").json()["smtp"]["security"] == "auto"


def test_a_bad_field_is_named_and_nothing_changes(api: TestClient) -> None:
    api.patch("/api/config", json={"device": {"name": "Front door"}})
    reply = api.patch(
        "/api/config",
        json={"device": {"name": "Back door"}, "email_on_call": {"snapshots": {"count": 9}}},
    )
    assert reply.status_code == 422
    assert reply.json()["error"]["code"] == "validation"
    assert reply.json()["error"]["field"] == "email_on_call.snapshots.count"
    assert api.get("/api/config").json()["device"]["name"] == "Front door"


def test_the_password_is_never_returned(api: TestClient) -> None:
    reply = api.patch("/api/config", json={"smtp": {"password": "hunter2"}})
    assert "hunter2" not in reply.text
    shown = api.get("/api/config")
    assert "hunter2" not in shown.text
    assert shown.json()["smtp"]["password_set"] is True


def test_put_replaces_and_keeps_secrets_that_were_not_sent(
    api: TestClient, service: object
) -> None:
    api.patch("/api/config", json={"smtp": {"password": "hunter2", "server": "mx.example.com"}})
    document = api.get("/api/config").json()
    document["smtp"]["port"] = 2525
    assert api.put("/api/config", json=document).status_code == 200
    from doormail.app import Service

    assert isinstance(service, Service)
    assert service.settings.load().smtp.password == "hunter2"
    assert service.settings.load().smtp.port == 2525


def test_malformed_json_is_a_clear_error(api: TestClient) -> None:
    reply = api.patch("/api/config", content=b"{", headers={"content-type": "application/json"})
    assert reply.status_code == 400
    assert reply.json()["error"]["field"] == "body"


def test_a_document_that_is_not_an_object_is_refused(api: TestClient) -> None:
    reply = api.put("/api/config", json=[1, 2])
    assert reply.status_code == 422
