"""`/api/config`: GET shows the document, PATCH merges, PUT replaces; atomically, naming the
first bad field, secrets write-only."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from doormail.app import Service
from doormail.settings import Settings, validate

SUBJECT_LIMIT = 1024
BODY_LIMIT = 64 * 1024
MESSAGES = [
    "email_on_call",
    "email_on_access",
    "email_on_event.sip_registration_lost",
    "email_on_event.device_rebooted",
    "email_on_event.tamper",
]


def nested(path: str, value: object) -> dict[str, object]:
    """`{"a": {"b": value}}` for the path "a.b"."""
    document: object = value
    for key in reversed(path.split(".")):
        document = {key: document}
    assert isinstance(document, dict)
    return document


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


def test_every_bad_field_is_listed_at_once(api: TestClient) -> None:
    reply = api.patch(
        "/api/config",
        json={
            "smtp": {"port": 0, "deliver_in": 5},
            "email_on_call": {"snapshots": {"count": 9}},
        },
    )
    assert reply.status_code == 422
    error = reply.json()["error"]
    fields = [problem["field"] for problem in error["errors"]]
    assert sorted(fields) == ["email_on_call.snapshots.count", "smtp.deliver_in", "smtp.port"]
    assert (error["field"], error["message"]) == (fields[0], error["errors"][0]["message"])


def test_smtp_enabled_without_server_and_from_names_both(api: TestClient) -> None:
    reply = api.patch("/api/config", json={"smtp": {"enabled": True}})
    assert reply.status_code == 422
    assert reply.json()["error"]["errors"] == [
        {"field": "smtp.server", "message": "is required when smtp.enabled is true"},
        {"field": "smtp.from", "message": "is required when smtp.enabled is true"},
    ]


def test_a_bad_port_and_what_smtp_enabled_needs_are_listed_together(api: TestClient) -> None:
    reply = api.patch("/api/config", json={"smtp": {"enabled": True, "port": 0}})
    assert reply.status_code == 422
    fields = [problem["field"] for problem in reply.json()["error"]["errors"]]
    assert fields == ["smtp.port", "smtp.server", "smtp.from"]


def test_the_password_is_never_returned(api: TestClient) -> None:
    reply = api.patch("/api/config", json={"smtp": {"password": "hunter2"}})
    assert "hunter2" not in reply.text
    shown = api.get("/api/config")
    assert "hunter2" not in shown.text
    assert shown.json()["smtp"]["password_set"] is True


def test_put_replaces_and_keeps_secrets_that_were_not_sent(
    api: TestClient, service: Service
) -> None:
    api.patch("/api/config", json={"smtp": {"password": "hunter2", "server": "mx.example.com"}})
    document = api.get("/api/config").json()
    document["smtp"]["from"] = "door@example.com"
    assert api.put("/api/config", json=document).status_code == 200
    assert service.settings.load().smtp.password == "hunter2"
    assert service.settings.load().smtp.from_ == "door@example.com"


def test_patch_that_sends_the_stored_password_to_another_server_is_refused_naming_it(
    api: TestClient, service: Service
) -> None:
    login = {"server": "mx.example.com", "username": "door", "password": "S3cretSMTPpw"}
    api.patch("/api/config", json={"smtp": login})
    moved = {"server": "127.0.0.1", "port": 2599, "security": "none"}
    reply = api.patch("/api/config", json={"smtp": moved})
    assert reply.status_code == 422
    error = reply.json()["error"]
    assert error["code"] == "validation"
    assert error["field"] == "smtp.password"
    assert "smtp.server changed" in error["message"]
    assert "given again" in error["message"]
    assert service.settings.load().smtp.server == "mx.example.com"
    document = api.get("/api/config").json()
    document["smtp"]["port"] = 2525
    assert api.put("/api/config", json=document).json()["error"]["field"] == "smtp.password"
    given = api.patch("/api/config", json={"smtp": {**moved, "password": "for-the-new-one"}})
    assert given.status_code == 200
    assert service.settings.load().smtp.password == "for-the-new-one"


def test_patch_of_the_oauth2_token_url_without_its_secrets_is_refused(
    api: TestClient, service: Service
) -> None:
    oauth2 = {
        "token_url": "https://login.example.com/token",
        "client_id": "doormail",
        "client_secret": "client-s3cret",
        "refresh_token": "refresh-s3cret",
    }
    api.patch("/api/config", json={"smtp": {"auth": "xoauth2", "oauth2": oauth2}})
    patch = {"smtp": {"oauth2": {"token_url": "http://127.0.0.1:2599/token"}}}
    reply = api.patch("/api/config", json=patch)
    assert reply.status_code == 422
    assert reply.json()["error"]["field"] == "smtp.oauth2.client_secret"
    assert service.settings.load().smtp.oauth2.token_url == oauth2["token_url"]


def test_patch_of_the_camera_url_to_another_host_without_the_camera_password_is_refused(
    api: TestClient, service: Service
) -> None:
    camera = {"source": "http", "url": "http://cam.example/snap.jpg", "password": "cam-s3cret"}
    api.patch("/api/config", json={"camera": camera})
    reply = api.patch("/api/config", json={"camera": {"url": "http://127.0.0.1:2599/snap.jpg"}})
    assert reply.status_code == 422
    assert reply.json()["error"]["field"] == "camera.password"
    assert service.settings.load().camera.url == camera["url"]


def test_a_password_in_the_camera_url_is_shown_as_stars_and_kept_by_a_get_put_round_trip(
    api: TestClient, service: Service
) -> None:
    url = "rtsp://viewer:cam-s3cret@cam.example/stream1"
    reply = api.patch("/api/config", json={"camera": {"source": "rtsp", "url": url}})
    assert reply.json()["camera"]["url"] == "rtsp://viewer:***@cam.example/stream1"
    shown = api.get("/api/config")
    assert "cam-s3cret" not in shown.text
    assert shown.json()["camera"]["url"] == "rtsp://viewer:***@cam.example/stream1"
    assert api.put("/api/config", json=shown.json()).status_code == 200
    assert service.settings.load().camera.url == url
    elsewhere = {"url": "rtsp://viewer:***@127.0.0.1/stream1"}
    refused = api.patch("/api/config", json={"camera": elsewhere})
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "camera.url"
    assert service.settings.load().camera.url == url


def test_malformed_json_is_a_clear_error(api: TestClient) -> None:
    reply = api.patch("/api/config", content=b"{", headers={"content-type": "application/json"})
    assert reply.status_code == 400
    assert reply.json()["error"]["field"] == "body"


def test_a_document_that_is_not_an_object_is_refused(api: TestClient) -> None:
    reply = api.put("/api/config", json=[1, 2])
    assert reply.status_code == 422


@pytest.mark.parametrize("message", MESSAGES)
def test_a_subject_over_1_kb_or_a_body_over_64_kb_is_refused_naming_the_field(
    api: TestClient, message: str
) -> None:
    for key, limit in (("subject", SUBJECT_LIMIT), ("body", BODY_LIMIT)):
        field = f"{message}.{key}"
        refused = api.patch("/api/config", json=nested(field, "x" * (limit + 1)))
        assert refused.status_code == 422, field
        error = refused.json()["error"]
        assert error["field"] == field
        assert f"at most {limit} characters" in error["message"]
        accepted = api.patch("/api/config", json=nested(field, "x" * limit))
        assert accepted.status_code == 200, field


def test_a_template_saved_before_the_limits_keeps_working_until_changed(
    api: TestClient, service: Service
) -> None:
    document = Settings().document()
    document["email_on_call"]["body"] = "<p>$DeviceName$</p>" * 5000
    service.settings.save(validate(document, stored=True))
    assert api.get("/api/config").status_code == 200
    preview = api.get("/api/templates/preview", params={"kind": "call"})
    assert preview.status_code == 200 and preview.json()["text"].startswith("doormail")
    other = api.patch("/api/config", json={"device": {"name": "Front door"}})
    assert other.status_code == 422
    assert other.json()["error"]["field"] == "email_on_call.body"
    shortened = {"device": {"name": "Front door"}, "email_on_call": {"body": "<p>Hi</p>"}}
    assert api.patch("/api/config", json=shortened).status_code == 200
