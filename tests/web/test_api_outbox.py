"""`/api/outbox` and `/metrics` over HTTP: listing with a cursor, one entry, its exact bytes,
retry by hand, errors in the API's shape, and no access without authentication."""

from __future__ import annotations

import time
import uuid

from fastapi.testclient import TestClient

from doormail.app import Service
from doormail.mail import OutgoingMessage
from tests.outbox.helpers import mark_failed, queue_committed

FIELDS = {
    "id",
    "event_id",
    "kind",
    "to",
    "subject",
    "status",
    "attempts",
    "created_at",
    "deliver_by",
    "next_attempt_at",
    "sent_at",
    "last_error",
    "smtp_reply",
}


def queue(service: Service, count: int = 1) -> list[str]:
    # Created just now: the service's worker expires mail whose deadline has passed.
    start, ids = time.time(), []
    for n in range(count):
        recipient = f"{uuid.uuid4().hex[:10]}@example.com"
        message = OutgoingMessage(
            event_id=f"ev-{n}",
            kind="access",
            sender="door@example.org",
            recipient=recipient,
            subject=f"Access {n}",
            message_id=f"<{uuid.uuid4().hex}@doormail>",
            data=f"To: {recipient}\r\nSubject: Access {n}\r\n\r\nGranted.\r\n".encode(),
        )
        [item] = queue_committed(service.engine, service.queue, [message], 86400, now=start + n)
        ids.append(item.id)
    return ids


def fail(service: Service, item_id: str) -> None:
    service.queue.claim("test", 100, 60)
    mark_failed(service.queue, item_id, "550 5.1.1 User unknown", reply="550 5.1.1 User unknown")


def test_outbox_lists_newest_first_with_a_cursor(api: TestClient, service: Service) -> None:
    ids = queue(service, 3)
    first = api.get("/api/outbox", params={"limit": 2}).json()
    assert [item["id"] for item in first["items"]] == [ids[2], ids[1]]
    assert set(first["items"][0]) == FIELDS
    second = api.get("/api/outbox", params={"limit": 2, "cursor": first["next"]}).json()
    assert [item["id"] for item in second["items"]] == [ids[0]]
    assert second["next"] is None


def test_outbox_lists_by_status(api: TestClient, service: Service) -> None:
    ids = queue(service, 2)
    fail(service, ids[0])
    service.outbox.retry(ids[0])
    fail(service, ids[0])
    failed = api.get("/api/outbox", params={"status": "failed"}).json()["items"]
    assert [item["id"] for item in failed] == [ids[0]]
    assert failed[0]["last_error"] == "550 5.1.1 User unknown"


def test_a_bad_listing_is_refused_naming_the_field(api: TestClient) -> None:
    for params, field in (
        ({"status": "lost"}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": "nonsense"}, "cursor"),
    ):
        reply = api.get("/api/outbox", params=params)
        assert reply.status_code == 422, params
        assert reply.json()["error"]["field"] == field


def test_one_entry_and_its_exact_message(api: TestClient, service: Service) -> None:
    [item_id] = queue(service)
    entry = api.get(f"/api/outbox/{item_id}").json()
    assert (entry["id"], entry["status"], entry["kind"]) == (item_id, "queued", "access")
    message = api.get(f"/api/outbox/{item_id}/message")
    assert message.headers["content-type"] == "message/rfc822"
    assert message.content == service.outbox.message(item_id)


def test_an_unknown_entry_is_404_in_the_error_shape(api: TestClient) -> None:
    for path in ("/api/outbox/nope", "/api/outbox/nope/message"):
        reply = api.get(path)
        assert reply.status_code == 404
        assert reply.json()["error"]["code"] == "not_found"
    assert api.post("/api/outbox/nope/retry").status_code == 404


def test_failed_mail_can_be_retried_by_hand(api: TestClient, service: Service) -> None:
    [item_id] = queue(service)
    fail(service, item_id)
    reply = api.post(f"/api/outbox/{item_id}/retry")
    assert reply.status_code == 200
    entry = reply.json()
    assert (entry["status"], entry["attempts"]) == ("queued", 0)
    deliver_in = service.settings.load().smtp.deliver_in
    assert entry["deliver_by"] - entry["next_attempt_at"] == deliver_in


def test_queued_mail_cannot_be_retried(api: TestClient, service: Service) -> None:
    [item_id] = queue(service)
    reply = api.post(f"/api/outbox/{item_id}/retry")
    assert reply.status_code == 409
    assert reply.json()["error"]["code"] == "conflict"


def test_metrics_show_the_outbox_depth_and_mails_queued(api: TestClient, service: Service) -> None:
    queue(service, 2)
    reply = api.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    assert 'doormail_outbox_depth{status="queued"} 2.0' in reply.text
    assert 'doormail_mails_queued_total{kind="access"} 2.0' in reply.text
    assert "doormail_delivery_seconds_bucket" in reply.text
    assert (
        "doormail_events_received_total" in reply.text or "doormail_events_received" in reply.text
    )


def test_outbox_and_metrics_need_authentication(anonymous: TestClient) -> None:
    for path in ("/api/outbox", "/api/outbox/x", "/api/outbox/x/message", "/metrics"):
        assert anonymous.get(path).status_code == 401, path
    assert anonymous.post("/api/outbox/x/retry").status_code == 401
