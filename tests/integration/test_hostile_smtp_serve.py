"""SMTP servers that attack their client: a greeting line of a megabyte, a greeting that goes on
forever (continuation lines as fast as the socket takes them, or one byte every half second),
and one that accepts the connection and says nothing. A real `doormail serve` is pointed at each,
through Apply & Test and through the delivery worker: each attempt ends with an error naming the
stage and what to check, /healthz answers all the while, and the mail is kept whole."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningService, free_port, start_serve

pytestmark = pytest.mark.integration

MEGABYTE = 1024 * 1024


async def _long_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"220 " + b"x" * MEGABYTE + b"\r\n")
    await writer.drain()
    await reader.read(100)


async def _endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        writer.write(b"220-" + b"y" * 1000 + b"\r\n")
        await writer.drain()


async def _drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"220 ")
    while True:
        writer.write(b"z")
        await writer.drain()
        await asyncio.sleep(0.5)


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # until the client gives up


BEHAVIOURS = {"long_line": _long_line, "endless": _endless, "drip": _drip, "silent": _silent}


@pytest.fixture(scope="module")
def hostile() -> Iterator[dict[str, int]]:
    """Each hostile server on its own port, in a thread's event loop."""
    loop = asyncio.new_event_loop()
    ports = {name: free_port() for name in BEHAVIOURS}
    servers: list[asyncio.Server] = []

    async def guarded(behaviour: Any, reader: Any, writer: Any) -> None:
        try:
            await behaviour(reader, writer)
        except (ConnectionError, OSError):
            pass  # the client hung up, as it should
        finally:
            writer.close()

    async def start() -> None:
        for name, behaviour in BEHAVIOURS.items():
            servers.append(
                await asyncio.start_server(
                    lambda r, w, b=behaviour: guarded(b, r, w), "127.0.0.1", ports[name]
                )
            )

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(5)
    try:
        yield ports
    finally:

        async def stop() -> None:
            for server in servers:
                server.close()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    running = start_serve(tmp_path_factory.mktemp("hostile") / "data")
    try:
        yield running
    finally:
        running.stop()


def smtp_at(port: int) -> dict[str, Any]:
    return {
        "enabled": True,
        "server": "127.0.0.1",
        "port": port,
        "security": "none",
        "from": "door@example.org",
    }


def healthy_until(client: httpx.Client, done: Any, within: float) -> float:
    """Ask /healthz every 0.2 s until `done()`; the slowest answer, in seconds."""
    slowest, deadline = 0.0, time.monotonic() + within
    while not done():
        assert time.monotonic() < deadline, "not finished in time"
        started = time.monotonic()
        assert client.get("/healthz").json() == {"status": "ok"}
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.2)
    return slowest


def test_apply_and_test_ends_each_attack_naming_the_stage_while_the_service_answers(
    served: RunningService, hostile: dict[str, int]
) -> None:
    with served.client() as client:
        runs: dict[str, str] = {}
        finished: dict[str, dict[str, Any]] = {}

        def start(name: str) -> None:
            body = {"to": "installer@example.com", "smtp": smtp_at(hostile[name])}
            reply = client.post("/api/smtp/test", json=body)
            assert reply.status_code == 202, reply.text
            runs[name] = reply.json()["id"]

        def all_done() -> bool:
            for name, run_id in runs.items():
                state = client.get(f"/api/smtp/test/{run_id}").json()
                if state["state"] != "running":
                    finished[name] = state
            if "long_line" in finished and "endless" not in runs:
                start("endless")  # at most three runs at once
            return len(finished) == len(BEHAVIOURS)

        for name in ("silent", "drip", "long_line"):
            start(name)
        slowest = healthy_until(client, all_done, within=60)
    assert slowest < 1.0
    for name, state in finished.items():
        assert state["state"] == "failed", name
        failure = [line for line in state["log"] if line["stage"] not in ("message", "hint")][-1]
        assert failure["stage"] == "connecting", (name, failure)
        expected = "too long" if name in ("long_line", "endless") else "no answer"
        assert expected in failure["message"], (name, failure)
        assert len(failure["message"]) < 300
        assert any(line["stage"] == "hint" for line in state["log"]), name


@pytest.mark.parametrize("attack", ["long_line", "endless"])
def test_the_worker_keeps_the_mail_whole_and_says_what_to_check(
    served: RunningService, hostile: dict[str, int], attack: str, tmp_path: Path
) -> None:
    with served.client() as client:
        config = {
            "smtp": smtp_at(hostile[attack]),
            "email_on_event": {"to": "resident@example.com", "tamper": {"enabled": True}},
        }
        assert client.patch("/api/config", json=config).status_code == 200
        reply = client.post("/api/events", json={"type": "tamper.activated"})
        assert reply.status_code == 202, reply.text
        [queued] = reply.json()["emails"]

        def tried() -> bool:
            item = client.get(f"/api/outbox/{queued['id']}").json()
            return bool(item["status"] != "sending" and item["last_error"])

        healthy_until(client, tried, within=30)
        item = client.get(f"/api/outbox/{queued['id']}").json()
        message = client.get(f"/api/outbox/{queued['id']}/message")
        # An answer that is not SMTP is a setting that cannot work (the wrong port or security):
        # the mail is kept, failed, with what to check, and goes again when retried by hand.
        assert item["status"] == "failed"
        assert "not SMTP: Response too long" in item["last_error"]
        assert "check smtp.port and smtp.security" in item["last_error"]
        assert message.status_code == 200 and b"X-Doormail-Event" in message.content
        retried = client.post(f"/api/outbox/{queued['id']}/retry")
        assert retried.json()["status"] == "queued"
        again = client.get(f"/api/outbox/{queued['id']}/message")
        assert again.content == message.content
