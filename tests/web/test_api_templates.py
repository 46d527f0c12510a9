"""`GET|POST /api/templates/preview`: saved or given templates rendered with sample values."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from doormail.placeholders import KINDS


@pytest.mark.parametrize("kind", KINDS)
def test_preview_renders_the_saved_templates_of_each_kind(api: TestClient, kind: str) -> None:
    reply = api.get("/api/templates/preview", params={"kind": kind})
    assert reply.status_code == 200
    preview = reply.json()
    assert set(preview) == {"kind", "subject", "html", "text"}
    assert preview["kind"] == kind
    assert "at doormail" in preview["subject"]  # what happened where (the device's name)
    assert "$" not in preview["subject"] + preview["html"] + preview["text"]
    assert preview["html"].startswith("<!DOCTYPE html>")
    assert "<" not in preview["text"]


def test_preview_shows_saved_changes_with_the_device_name_and_time_zone(api: TestClient) -> None:
    patch = {
        "device": {
            "name": "Vchod A",
            "timezone": "Asia/Kathmandu",
            "datetime_format": "%H:%M %z",
        },
        "email_on_call": {"subject": "Zvoní $User$ ($DialNumber$) – $DeviceName$ $DateTime$"},
    }
    assert api.patch("/api/config", json=patch).status_code == 200
    subject = api.get("/api/templates/preview", params={"kind": "call"}).json()["subject"]
    assert re.fullmatch(r"Zvoní Alice Novak \(101\) – Vchod A \d\d:\d\d \+0545", subject)


def test_preview_of_unsaved_templates_uses_the_extended_syntax(api: TestClient) -> None:
    reply = api.get(
        "/api/templates/preview",
        params={
            "kind": "access",
            "subject": "$AuthIdValid:valid=platný,invalid=neplatný$ $AuthIdType$",
            "body": '<p>$User$ <a href="https://door.example/log">log</a><br>$AuthId$</p>',
        },
    )
    preview = reply.json()
    assert preview["subject"] == "platný Card"
    assert (
        '<p>Alice Novak <a href="https://door.example/log">log</a><br>0012AB34CD</p>'
        in preview["html"]
    )
    assert preview["text"] == "Alice Novak log (https://door.example/log)\n0012AB34CD\n"


def test_preview_leaves_placeholders_unknown_for_the_kind_as_written(api: TestClient) -> None:
    reply = api.get(
        "/api/templates/preview",
        params={"kind": "tamper", "subject": "$DeviceName$ $AuthId$ $DialNumber$"},
    )
    assert reply.json()["subject"] == "doormail $AuthId$ $DialNumber$"


def test_preview_by_post_takes_long_templates(api: TestClient) -> None:
    body = "<p>" + "word " * 5000 + "</p>"
    reply = api.post("/api/templates/preview", json={"kind": "call", "body": body})
    assert reply.status_code == 200
    assert reply.json()["text"].startswith("word word")


def test_preview_of_an_unknown_kind_names_the_field(api: TestClient) -> None:
    reply = api.get("/api/templates/preview", params={"kind": "doorbell"})
    assert reply.status_code == 422
    assert reply.json()["error"]["field"] == "kind"
    assert "call, access" in reply.json()["error"]["message"]
    missing = api.get("/api/templates/preview")
    assert missing.status_code == 422 and missing.json()["error"]["field"] == "kind"


def test_preview_needs_authentication(anonymous: TestClient) -> None:
    assert anonymous.get("/api/templates/preview", params={"kind": "call"}).status_code == 401


def test_preview_refuses_templates_longer_than_a_template_may_be(api: TestClient) -> None:
    subject, body = "x" * (1024 + 1), "x" * (64 * 1024 + 1)
    for reply, field in (
        (api.get("/api/templates/preview", params={"kind": "call", "subject": subject}), "subject"),
        (api.post("/api/templates/preview", json={"kind": "call", "subject": subject}), "subject"),
        (api.post("/api/templates/preview", json={"kind": "call", "body": body}), "body"),
    ):
        assert reply.status_code == 422
        assert reply.json()["error"]["field"] == field
    longest = {"kind": "call", "subject": subject[1:], "body": body[1:]}
    assert api.post("/api/templates/preview", json=longest).status_code == 200


def test_preview_shows_a_box_for_each_snapshot_to_come(api: TestClient) -> None:
    patch = {"email_on_call": {"snapshots": {"attach": True, "count": 2}}}
    assert api.patch("/api/config", json=patch).status_code == 200
    preview = api.get("/api/templates/preview", params={"kind": "call"}).json()
    body = preview["html"][preview["html"].index("<body") :]
    assert body.index("snapshot-2.jpg") < body.index("Missed call")
