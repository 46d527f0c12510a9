"""Sending e-mail on demand: the Automation action `POST /api/actions/send-email` and the
intercom's `GET|POST /api/email/send`, through compose into the outbox."""

from __future__ import annotations

import email
import email.policy
import io
import re
from email.message import EmailMessage
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from doormail.app import Service
from doormail.settings import apply_patch
from doormail.users.model import User
from tests.conftest import ADMIN_PASSWORD, RecordingCamera, free_port

NATIVE = "/api/actions/send-email"
INTERCOM = "/api/email/send"


@pytest.fixture
def enabled(service: Service, camera: RecordingCamera) -> Service:
    # A server that is not there: the mail stays in the outbox, where the tests read it.
    config = {
        "device": {"name": "Front door", "timezone": "Europe/Prague"},
        "smtp": {
            "enabled": True,
            "server": "127.0.0.1",
            "port": free_port(),
            "from": "door@example.org",
        },
    }
    service.settings.save(apply_patch(service.settings.load(), config))
    service.users.create(
        User(id="u-alice", name="Alice <Novak>", email="alice@example.com, a@work.example")
    )
    service.users.create(User(id="u-bob", name="Bob"))
    return service


def message(service: Service, outbox_id: str) -> EmailMessage:
    parsed = email.message_from_bytes(
        service.outbox.message(outbox_id), policy=email.policy.default
    )
    assert isinstance(parsed, EmailMessage)
    return parsed


def part(parsed: EmailMessage, subtype: str) -> str:
    body = parsed.get_body((subtype,))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


def only_mail(service: Service, reply: dict[str, Any]) -> EmailMessage:
    assert len(reply["emails"]) == 1
    return message(service, reply["emails"][0]["id"])


def all_queued(service: Service) -> list[EmailMessage]:
    items = service.outbox.page(limit=100).items
    return [message(service, item.id) for item in items]


# -- POST /api/actions/send-email --------------------------------------------------------------


def test_send_email_action_queues_the_call_templates_with_one_snapshot(
    api: TestClient, enabled: Service, camera: RecordingCamera
) -> None:
    reply = api.post(NATIVE, json={"to": "guard@example.com"})
    assert reply.status_code == 202
    result = reply.json()
    assert result["event_id"].startswith("send-email-")
    assert [(e["to"], e["status"]) for e in result["emails"]] == [("guard@example.com", "queued")]
    parsed = only_mail(enabled, result)
    assert parsed["To"] == "guard@example.com"
    assert parsed["X-Doormail-Event"] == result["event_id"]
    # The E-Mail on Call templates, with the device's name and time (and zone, as a new
    # installation shows it); call values stay unknown.
    assert re.fullmatch(
        r"\$CallState:Missed=Missed call,Answered=Call\$ at Front door — \$DialNumber\$ \$User\$",
        parsed["Subject"],
    )
    attachments = list(parsed.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["snapshot-1.jpg"]
    assert Image.open(io.BytesIO(attachments[0].get_content())).size == (640, 480)
    ((start, end, count, width, height),) = camera.asked
    assert (end - start, count, width, height) == (1.0, 1, 640, 480)


def test_send_email_action_with_given_text_sender_and_snapshots(
    api: TestClient, enabled: Service, camera: RecordingCamera
) -> None:
    reply = api.post(
        NATIVE,
        json={
            "to": ["a@example.com", "b@example.com", "A@example.com"],
            "sender": "reception@example.org",
            "subject": "Parcel at $DeviceName$",
            "body": "<p>A parcel for you at $DeviceName$.<br>$DateTime$ $User$</p>",
            "snapshots": 3,
            "time_span": 10,
            "width": 320,
            "height": 240,
        },
    )
    assert reply.status_code == 202
    assert [e["to"] for e in reply.json()["emails"]] == ["a@example.com", "b@example.com"]
    for entry in reply.json()["emails"]:
        parsed = message(enabled, entry["id"])
        assert parsed["To"] == entry["to"]
        assert parsed["Subject"] == "Parcel at Front door"
        assert parsed["From"].addresses[0].addr_spec == "reception@example.org"
        assert parsed["Sender"] == "door@example.org"
        text = part(parsed, "plain")
        assert text.startswith("A parcel for you at Front door.\n") and "$User$" in text
        assert len(list(parsed.iter_attachments())) == 3
    ((start, end, count, width, height),) = camera.asked
    assert (end - start, count, width, height) == (10.0, 3, 320, 240)


def test_send_email_action_to_a_user_goes_to_each_of_their_addresses(
    api: TestClient, enabled: Service
) -> None:
    reply = api.post(NATIVE, json={"user": "u-alice", "subject": "For $User$", "snapshots": 0})
    assert reply.status_code == 202
    assert [e["to"] for e in reply.json()["emails"]] == ["alice@example.com", "a@work.example"]
    parsed = message(enabled, reply.json()["emails"][0]["id"])
    assert parsed["Subject"] == "For Alice <Novak>"
    assert parsed.get_content_type() == "multipart/alternative"


def test_send_email_action_escapes_the_user_name_in_the_body(
    api: TestClient, enabled: Service
) -> None:
    reply = api.post(NATIVE, json={"user": "u-alice", "body": "<p>$User$</p>", "snapshots": 0})
    first = message(enabled, reply.json()["emails"][0]["id"])
    assert "<p>Alice &lt;Novak&gt;</p>" in part(first, "html")


# Each (request, field) pair of the table runs against one service: setting one up per case
# would cost more than all the cases together.
BAD_ACTIONS: list[tuple[dict[str, Any], str]] = [
    ({}, "to"),
    ({"to": ""}, "to"),
    ({"to": "not-an-address"}, "to"),
    ({"to": ["ok@example.com", "bad@"]}, "to"),
    ({"to": 5}, "to"),
    ({"to": "a@example.com", "snapshots": 6}, "snapshots"),
    ({"to": "a@example.com", "snapshots": -1}, "snapshots"),
    ({"to": "a@example.com", "snapshots": "2"}, "snapshots"),
    ({"to": "a@example.com", "time_span": -1}, "time_span"),
    ({"to": "a@example.com", "width": 4000}, "width"),
    ({"to": "a@example.com", "height": 0}, "height"),
    ({"to": "a@example.com", "sender": "nobody"}, "sender"),
    ({"to": "a@example.com", "subject": "x" * 2001}, "subject"),
    ({"to": "a@example.com", "subject": "x" * (1024 + 1)}, "subject"),
    ({"to": "a@example.com", "body": "x" * (64 * 1024 + 1)}, "body"),
    ({"to": "a@example.com", "colour": "red"}, "colour"),
    ({"user": "u-bob"}, "user"),
]


def test_send_email_action_refuses_bad_input_naming_the_field(
    api: TestClient, enabled: Service
) -> None:
    for body, field in BAD_ACTIONS:
        reply = api.post(NATIVE, json=body)
        assert reply.status_code == 422, (body, reply.text)
        assert reply.json()["error"]["field"] == field, (body, reply.text)
    assert enabled.outbox.page(limit=10).items == []


def test_send_email_action_to_an_unknown_user_is_not_found(
    api: TestClient, enabled: Service
) -> None:
    reply = api.post(NATIVE, json={"user": "u-nobody"})
    assert reply.status_code == 404
    message = "no user has the id 'u-nobody'"
    assert reply.json()["error"] == {
        "code": "not_found",
        "field": "user",
        "message": message,
        "errors": [{"field": "user", "message": message}],
    }


def test_send_email_action_with_smtp_disabled_is_a_conflict(
    api: TestClient, service: Service, camera: RecordingCamera
) -> None:
    reply = api.post(NATIVE, json={"to": "a@example.com"})
    assert reply.status_code == 409
    assert reply.json()["error"]["code"] == "smtp_disabled"
    assert reply.json()["error"]["field"] == "smtp.enabled"
    assert camera.asked == [] and service.outbox.page(limit=10).items == []


def test_send_email_action_with_invalid_json_is_a_bad_request(
    api: TestClient, enabled: Service
) -> None:
    reply = api.post(NATIVE, content=b"{", headers={"content-type": "application/json"})
    assert reply.status_code == 400


def test_send_email_action_needs_authentication(anonymous: TestClient) -> None:
    assert anonymous.post(NATIVE, json={"to": "a@example.com"}).status_code == 401


# -- GET|POST /api/email/send ------------------------------------------------------------------


def test_intercom_form_by_query_parameters_sends_the_body_without_snapshots(
    api: TestClient, enabled: Service, camera: RecordingCamera
) -> None:
    reply = api.get(
        INTERCOM,
        params={"to": "somebody@example.com", "subject": "Hello", "body": "<b>Hello</b> there"},
    )
    assert (reply.status_code, reply.json()) == (200, {"success": True})
    (parsed,) = all_queued(enabled)
    assert parsed["Subject"] == "Hello" and parsed["To"] == "somebody@example.com"
    assert part(parsed, "plain").startswith("Hello there\n\n-- \nSent automatically by ")
    assert list(parsed.iter_attachments()) == [] and camera.asked == []


def test_intercom_form_by_form_fields_with_pictures(
    api: TestClient, enabled: Service, camera: RecordingCamera
) -> None:
    reply = api.post(
        INTERCOM,
        data={
            "to": "a@example.com",
            "subject": "Ring",
            "pictureCount": "2",
            "timeSpan": "5",
            "width": "320",
            "height": "240",
        },
    )
    assert reply.json() == {"success": True}
    (parsed,) = all_queued(enabled)
    attachments = list(parsed.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["snapshot-1.jpg", "snapshot-2.jpg"]
    ((start, end, count, width, height),) = camera.asked
    assert (end - start, count, width, height) == (5.0, 2, 320, 240)


def test_intercom_form_by_json_object_with_numbers(api: TestClient, enabled: Service) -> None:
    reply = api.post(
        INTERCOM, json={"to": "a@example.com, b@example.com", "subject": "x", "pictureCount": 1}
    )
    assert reply.json() == {"success": True}
    assert sorted(m["To"] for m in all_queued(enabled)) == ["a@example.com", "b@example.com"]


def test_intercom_form_fields_override_query_parameters(api: TestClient, enabled: Service) -> None:
    reply = api.post(f"{INTERCOM}?to=q@example.com&subject=query", data={"subject": "form"})
    assert reply.json() == {"success": True}
    (parsed,) = all_queued(enabled)
    assert (parsed["To"], parsed["Subject"]) == ("q@example.com", "form")


BAD_FORMS: list[tuple[dict[str, str], int, str]] = [
    ({"subject": "x"}, 11, "to"),
    ({"to": "", "subject": "x"}, 11, "to"),
    ({"to": "a@example.com"}, 11, "subject"),
    ({"to": "nobody", "subject": "x"}, 12, "to"),
    ({"to": "a@example.com", "subject": "x", "pictureCount": "6"}, 12, "pictureCount"),
    ({"to": "a@example.com", "subject": "x", "pictureCount": "two"}, 12, "pictureCount"),
    ({"to": "a@example.com", "subject": "x", "pictureCount": "1.5"}, 12, "pictureCount"),
    ({"to": "a@example.com", "subject": "x", "timeSpan": "-1"}, 12, "timeSpan"),
    ({"to": "a@example.com", "subject": "x", "timeSpan": "nan"}, 12, "timeSpan"),
    ({"to": "a@example.com", "subject": "x", "width": "641", "height": "480"}, 12, "width"),
    ({"to": "a@example.com", "subject": "x", "width": "640", "height": "481"}, 12, "height"),
    ({"to": "a@example.com", "subject": "x", "width": "640"}, 11, "height"),
    ({"to": "a@example.com", "subject": "x", "height": "480"}, 11, "width"),
    ({"to": "a@example.com", "subject": "x" * 2001}, 13, "subject"),
    ({"to": "a@example.com", "subject": "x" * (1024 + 1)}, 13, "subject"),
]
DESCRIPTIONS = {
    11: "missing mandatory parameter",
    12: "invalid parameter value",
    13: "parameter data too big",
}


def test_intercom_form_body_over_64_kb_is_too_big(api: TestClient, enabled: Service) -> None:
    params = {"to": "a@example.com", "subject": "x", "body": "x" * (64 * 1024 + 1)}
    for reply in (api.post(INTERCOM, data=params), api.post(INTERCOM, json=params)):
        assert reply.json() == {
            "success": False,
            "error": {"code": 13, "param": "body", "description": "parameter data too big"},
        }
    assert enabled.outbox.page(limit=10).items == []


def test_intercom_form_errors_name_the_parameter(api: TestClient, enabled: Service) -> None:
    for params, code, param in BAD_FORMS:
        for reply in (api.get(INTERCOM, params=params), api.post(INTERCOM, data=params)):
            assert reply.status_code == 200
            assert reply.json() == {
                "success": False,
                "error": {"code": code, "param": param, "description": DESCRIPTIONS[code]},
            }, params
    assert enabled.outbox.page(limit=10).items == []


def test_intercom_form_refuses_json_that_is_not_an_object(
    api: TestClient, enabled: Service
) -> None:
    for content in (b"[1]", b"{"):
        reply = api.post(INTERCOM, content=content, headers={"content-type": "application/json"})
        assert reply.status_code == 200
        assert reply.json()["error"]["code"] == 12
    reply = api.post(INTERCOM, json={"to": "a@example.com", "subject": 5})
    assert reply.json()["error"] == {
        "code": 12,
        "param": "subject",
        "description": "invalid parameter value",
    }


def test_intercom_form_with_smtp_disabled_says_function_is_disabled(
    api: TestClient, service: Service
) -> None:
    reply = api.get(INTERCOM, params={"to": "a@example.com", "subject": "x"})
    assert reply.status_code == 200
    assert reply.json() == {
        "success": False,
        "error": {"code": 4, "description": "function is disabled"},
    }


def test_intercom_form_needs_authentication(anonymous: TestClient) -> None:
    reply = anonymous.get(INTERCOM, params={"to": "a@example.com", "subject": "x"})
    assert reply.status_code == 401


def test_intercom_form_by_get_with_only_the_session_cookie_needs_the_csrf_token(
    service: Service, enabled: Service
) -> None:
    from doormail.web.app import create_app

    with TestClient(create_app(service)) as browser:
        login_page = browser.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', login_page)
        assert token
        browser.post(
            "/login",
            data={"csrf_token": token.group(1), "username": "admin", "password": ADMIN_PASSWORD},
            follow_redirects=False,
        )
        page = browser.get("/smtp").text
        session_token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert session_token
        params = {"to": "a@example.com", "subject": "x"}
        refused = browser.get(INTERCOM, params=params)
        assert refused.json()["success"] is False
        assert enabled.outbox.page(limit=10).items == []
        accepted = browser.get(
            INTERCOM, params=params, headers={"X-CSRF-Token": session_token.group(1)}
        )
        assert accepted.json() == {"success": True}
