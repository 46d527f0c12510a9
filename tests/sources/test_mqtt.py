"""The MQTT source against the real Mosquitto on 127.0.0.1:1883 (SPEC 11): an event published
to `doormail/<device>/events` is taken with the topic's device; events published while doormail
is stopped arrive once it is back (QoS 1, persistent session); a message that is not an event is
counted and logged, and the next good event still mails; the status says what it is doing."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import aiomqtt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from doormail.app import Service
from doormail.settings import apply_patch
from doormail.sources.mqtt import BadMessage, MqttSource, device_of, event_of
from doormail.store import tables
from doormail.store.leases import Leases
from tests.conftest import free_port, require_service

BROKER = ("127.0.0.1", 1883)


@pytest.fixture
def mosquitto() -> None:
    try:
        socket.create_connection(BROKER, timeout=1).close()
    except OSError:
        require_service("Mosquitto on 127.0.0.1:1883")


def enable(service: Service, prefix: str) -> None:
    service.settings.save(
        apply_patch(
            service.settings.load(),
            {
                "smtp": {"enabled": True, "server": "127.0.0.1", "from": "door@example.org"},
                "email_on_event": {"to": "desk@example.com", "tamper": {"enabled": True}},
                "sources": {
                    "mqtt": {
                        "enabled": True,
                        "topic": f"{prefix}/+/events",
                        "client_id": f"doormail-test-{prefix}",
                    }
                },
            },
        )
    )


async def forget_session(prefix: str) -> None:
    """Leave nothing in the shared broker: connecting with a clean session ends the one kept."""
    identifier = f"doormail-test-{prefix}"
    async with aiomqtt.Client(*BROKER, identifier=identifier, clean_session=True):
        pass


async def publish(topic: str, payload: bytes | str) -> None:
    async with aiomqtt.Client(*BROKER, identifier=f"pub-{uuid.uuid4().hex[:8]}") as client:
        await client.publish(topic, payload, qos=1)


def taken(service: Service) -> list[str]:
    with service.engine.connect() as connection:
        rows = connection.execute(
            select(tables.events.c.id).order_by(tables.events.c.received_at)
        ).all()
    return [row.id for row in rows]


async def until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def source(service: Service, holder: str = "me") -> MqttSource:
    return MqttSource(
        load_settings=service.settings.load,
        submit=service.intake.submit,
        leases=Leases(service.engine, holder),
        metrics=service.metrics,
    )


async def started(mqtt: MqttSource) -> asyncio.Task[None]:
    task = asyncio.create_task(mqtt.run())
    await until(lambda: mqtt.status.state == "connected")
    return task


async def stopped(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_the_device_is_the_topic_level_the_plus_matched() -> None:
    assert device_of("doormail/+/events", "doormail/door-1/events") == "door-1"
    assert device_of("doormail/#", "doormail/door-1/events") is None
    assert event_of(b'{"type": "tamper.activated"}', "door-1").device == "door-1"
    assert event_of(b'{"type": "tamper.activated", "device": "x"}', "door-1").device == "x"
    for payload, reason in [
        (b"not json", "not JSON"),
        (b"[1]", "one event"),
        (b'{"type": "door.opened"}', "type"),
        (b"\xff", "not JSON"),
    ]:
        with pytest.raises(BadMessage, match=reason):
            event_of(payload, None)


async def test_events_published_while_doormail_is_stopped_arrive_when_it_is_back(
    mosquitto: None, service: Service
) -> None:
    prefix = uuid.uuid4().hex[:10]
    enable(service, prefix)
    mqtt = source(service)
    task = await started(mqtt)
    await publish(f"{prefix}/door-1/events", json.dumps({"type": "tamper.activated", "id": "a"}))
    await until(lambda: taken(service) == ["a"])
    await stopped(task)
    for name in ("b", "c"):
        event = {"type": "tamper.activated", "id": name}
        await publish(f"{prefix}/door-1/events", json.dumps(event))
    again = source(service, holder="again")
    task = await started(again)
    await until(lambda: taken(service) == ["a", "b", "c"])
    await stopped(task)
    await forget_session(prefix)
    subjects = [item.subject for item in service.outbox.page(limit=10).items]
    assert subjects == ["Tamper switch activated at door-1"] * 3


async def test_garbage_is_counted_and_the_next_good_event_still_mails(
    mosquitto: None, service: Service
) -> None:
    prefix = uuid.uuid4().hex[:10]
    enable(service, prefix)
    mqtt = source(service)
    task = await started(mqtt)
    await publish(f"{prefix}/door-1/events", b"\x00garbage")
    await publish(f"{prefix}/door-1/events", json.dumps({"type": "tamper.activated"}))
    await until(lambda: mqtt.status.events_received == 1)  # counted once committed
    assert len(taken(service)) == 1
    assert mqtt.rejected == 1 and mqtt.status.state == "connected"
    metrics = service.metrics.render().decode()
    assert 'doormail_source_rejected_total{source="mqtt"} 1.0' in metrics
    assert 'doormail_source_events_total{device="door-1",event="tamper.activated"} 1.0' in metrics
    assert len(service.outbox.page(limit=10).items) == 1
    await stopped(task)
    await forget_session(prefix)


async def test_a_broker_that_is_not_there_is_failing_with_a_hint(service: Service) -> None:
    enable(service, "nowhere")
    service.settings.save(
        apply_patch(service.settings.load(), {"sources": {"mqtt": {"url": "mqtt://127.0.0.1:9"}}})
    )
    mqtt = source(service)
    task = asyncio.create_task(mqtt.run())
    await until(lambda: mqtt.status.state == "failing")
    await stopped(task)
    assert mqtt.status.last_error is not None and mqtt.status.last_error["hint"]


def test_mqtt_status_over_the_api_is_off_when_disabled(api: TestClient) -> None:
    status = api.get("/api/sources/mqtt/status").json()
    assert status["source"] == "mqtt" and status["state"] == "off"
    assert status["events_received"] == 0 and status["last_error"] is None


@contextmanager
def own_broker(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A Mosquitto of this test's own on `port` (the shared one is never stopped)."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.access(binary, os.X_OK):
        require_service("the mosquitto program")
    process = subprocess.Popen(
        [binary, "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "mosquitto did not start"
                time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        process.wait(5)


async def test_the_subscription_comes_back_after_the_broker_restarts(service: Service) -> None:
    port = free_port()
    enable(service, "restarts")
    service.settings.save(
        apply_patch(
            service.settings.load(), {"sources": {"mqtt": {"url": f"mqtt://127.0.0.1:{port}"}}}
        )
    )
    mqtt = source(service)
    with own_broker(port):
        task = await started(mqtt)
    await until(lambda: mqtt.status.state == "failing")
    assert mqtt.status.last_error is not None
    with own_broker(port):
        await until(lambda: mqtt.status.state == "connected", seconds=20)
        async with aiomqtt.Client("127.0.0.1", port, identifier="pub-restarts") as client:
            await client.publish("restarts/door-9/events", '{"type": "tamper.activated"}', qos=1)
        await until(lambda: len(taken(service)) == 1)
        await stopped(task)
