"""A real `doormail serve` with an HTTP camera on loopback: the camera is picked up from the
saved settings, the snapshot API shows now and seconds ago, and a missed call's mail carries
pictures from ringing to end — or, when the camera stopped mid-call, N/A and a note, on time."""

from __future__ import annotations

import email
import email.policy
import time
import uuid
from email.message import EmailMessage
from typing import Any

import httpx

from tests.camera.cameras import PASSWORD, USER, HttpCameraServer, http_camera
from tests.camera.pattern import moment_of
from tests.conftest import RunningService, free_port

CLOSE = 0.4
ON_TIME = 3.5  # the camera's two-second limit, and the rest of an event's way to the outbox


def wait_receiving(client: httpx.Client, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get("/api/camera/status").json()
        if status["state"] == "receiving" and status["frames"] >= 3:
            return
        time.sleep(0.1)
    raise AssertionError(f"the camera was not picked up: {status}")


def configure(client: httpx.Client, camera: HttpCameraServer, **more: Any) -> None:
    reply = client.patch(
        "/api/config",
        json={
            "camera": {
                "source": "http",
                "url": camera.url("/snapshot.jpg"),
                "username": USER,
                "password": PASSWORD,
            },
            **more,
        },
    )
    assert reply.status_code == 200, reply.text


def missed_call_mail(client: httpx.Client, between: float) -> tuple[EmailMessage, float, float]:
    """Ring, wait `between` seconds, end unanswered; the mail queued for it, and the moments
    of ringing and end. The end is acknowledged only once the mail is queued."""
    call = uuid.uuid4().hex
    ringing = time.time()
    reply = client.post(
        "/api/events", json={"type": "call.ringing", "call_id": call, "called": "9"}
    )
    assert reply.status_code == 202, reply.text
    time.sleep(between)
    ended = time.time()
    reply = client.post(
        "/api/events",
        json={"type": "call.ended", "call_id": call, "called": "9", "answered": False},
    )
    took = time.time() - ended
    assert reply.status_code == 202, reply.text
    assert took < ON_TIME
    (queued,) = reply.json()["emails"]
    data = client.get(f"/api/outbox/{queued['id']}/message").content
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message, ringing, ended


def snapshots_of(message: EmailMessage) -> list[bytes]:
    parts = [part for part in message.iter_attachments() if part.get_content_type() == "image/jpeg"]
    assert [part.get_filename() for part in parts] == [
        f"snapshot-{n}.jpg" for n in range(1, len(parts) + 1)
    ]
    return [part.get_content() for part in parts]


def body_text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def mail_settings() -> dict[str, Any]:
    # an SMTP server that is not there: the mail waits in the outbox, where the test reads it
    return {
        "smtp": {
            "enabled": True,
            "server": "127.0.0.1",
            "port": free_port(),
            "from": "door@example.org",
        },
        "email_on_call": {
            "send": "missed",
            "default_to": f"{uuid.uuid4().hex}@example.com",
            "snapshots": {"attach": True, "count": 3, "resolution": "320x240"},
        },
    }


def test_the_snapshot_api_shows_the_camera_now_and_seconds_ago(running: RunningService) -> None:
    with http_camera("digest") as camera, running.client() as client:
        configure(client, camera)
        wait_receiving(client)
        time.sleep(1.2)
        asked = time.time()
        now = client.get("/api/camera/snapshot", params={"width": 320, "height": 240})
        before = client.get(
            "/api/camera/snapshot", params={"width": 320, "height": 240, "time": -1}
        )
    assert now.status_code == before.status_code == 200
    assert now.headers["x-doormail-camera"] == "ok"
    shown_now, shown_before = moment_of(now.content, asked), moment_of(before.content, asked)
    assert shown_now is not None and abs(shown_now - asked) <= CLOSE
    assert shown_before is not None and abs(shown_before - (asked - 1)) <= CLOSE


def test_a_missed_call_mail_carries_snapshots_spread_from_ringing_to_end(
    running: RunningService,
) -> None:
    with http_camera("digest") as camera, running.client() as client:
        configure(client, camera, **mail_settings())
        wait_receiving(client)
        message, ringing, ended = missed_call_mail(client, between=2.0)
    shown = [moment_of(image, ended) for image in snapshots_of(message)]
    expected = [ringing, (ringing + ended) / 2, ended]
    assert None not in shown, shown
    for got, want in zip(shown, expected, strict=True):
        assert got is not None and abs(got - want) <= CLOSE, (shown, expected)
    assert "The camera did not answer." not in body_text(message)


def test_a_camera_stopped_mid_call_still_lets_the_mail_go_on_time_with_na(
    running: RunningService,
) -> None:
    with http_camera("digest") as camera, running.client() as client:
        configure(client, camera, **mail_settings())
        wait_receiving(client)
        call = uuid.uuid4().hex
        ringing = time.time()
        reply = client.post(
            "/api/events", json={"type": "call.ringing", "call_id": call, "called": "9"}
        )
        assert reply.status_code == 202
        time.sleep(0.3)
        camera.stop()
        stopped = time.time()
        time.sleep(2.5)
        ended = time.time()
        reply = client.post(
            "/api/events",
            json={"type": "call.ended", "call_id": call, "called": "9", "answered": False},
        )
        assert reply.status_code == 202, reply.text
        assert time.time() - ended < ON_TIME
        (queued,) = reply.json()["emails"]
        data = client.get(f"/api/outbox/{queued['id']}/message").content
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    shown = [moment_of(image, ended) for image in snapshots_of(message)]
    assert shown[0] is not None and abs(shown[0] - ringing) <= CLOSE
    # mid-call the last picture before the camera stopped may still be near enough to stand in
    assert shown[1] is None or shown[1] <= stopped
    assert shown[2] is None
    assert "The camera did not answer." in body_text(message)
