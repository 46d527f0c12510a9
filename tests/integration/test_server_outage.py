"""The SMTP server as a whole (SPEC section 8), against an aiosmtpd server that is stopped and
started on one port: while it is down (a listener that answers 421 at greeting, counting the
connections) it is probed once an interval, not once per mail, and its mails are not counted
as tried; when it comes back they leave within a second, while a mail deferred by a 4xx reply
to itself keeps its own back-off; a change of the SMTP settings wakes the queue; two workers
share one probe; the deadline still expires mail waiting for the server."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from doormail import settings as model
from doormail.metrics import Metrics
from doormail.outbox import Admin, Queue, RetryPolicy
from doormail.outbox.server import ProbePolicy, ServerWatch
from doormail.store import open_engine, upgrade
from doormail.store.settings_store import SettingsStore
from tests.conftest import free_port
from tests.integration.test_worker import (
    DAY,
    Outbox,
    Server,
    enqueue,
    eventually,
    is_final,
    make_worker,
    settled,
    smtp_to,
    started,
)
from tests.outbox.helpers import sample

# A probe every 0.1 s at first, growing to every 0.4 s: a second of outage takes about four.
PROBES = ProbePolicy(first=0.1, factor=2.0, ceiling=0.4)


@dataclass
class Down:
    """The port while the server is down for maintenance: each connection is counted and
    greeted with 421, as Postfix does when it refuses service."""

    port: int
    connections: int = 0
    _listener: asyncio.Server | None = None

    async def start(self) -> None:
        async def refuse(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.write(b"421 4.3.2 Service shutting down, try later\r\n")
            await writer.drain()
            writer.close()

        self._listener = await asyncio.start_server(refuse, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()
            self._listener = None


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    """An outbox whose 4xx back-off is long (a minute): a mail kept back by it stays back for
    the length of a test, while mail waiting for the server must not wait for it."""
    engine = open_engine(f"sqlite:///{tmp_path / 'outbox.sqlite3'}")
    upgrade(engine)
    metrics = Metrics()
    metrics.watch_server(ServerWatch(engine).read)
    policy = RetryPolicy(floor=60, ceiling=600, jitter=0)
    return Outbox(engine, Queue(engine, policy=policy, metrics=metrics), Admin(engine), metrics)


@pytest.fixture
def server() -> Iterator[Server]:
    found = Server(free_port(), pipelining=True)
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture
async def down(server: Server) -> AsyncIterator[Down]:
    """The server's port, down: started by the test, stopped before the server starts."""
    found = Down(server.port)
    try:
        yield found
    finally:
        await found.stop()


@contextlib.asynccontextmanager
async def outage(down: Down, server: Server) -> AsyncIterator[None]:
    """The server is down for the block, and up again (the real server) after it."""
    server.stop()
    await down.start()
    try:
        yield
    finally:
        await down.stop()
        server.start()


async def test_an_unreachable_server_is_probed_once_an_interval_not_once_per_mail(
    outbox: Outbox, server: Server, down: Down
) -> None:
    worker = make_worker(outbox, smtp_to(server.port), probes=PROBES)
    async with started(worker):
        async with outage(down, server):
            ids = enqueue(outbox, worker, count=300)
            await asyncio.sleep(1.0)
            # One connection found it down, then probes at 0.1, 0.3, 0.7 s (and perhaps 1.1 s).
            assert 3 <= down.connections <= 5
            waiting = [outbox.admin.get(i) for i in ids]
            assert {item.status for item in waiting if item} == {"queued"}
            assert {item.attempts for item in waiting if item} == {0}
            assert all(
                (item.last_error or "").startswith("SMTP server unreachable since ")
                for item in waiting
                if item
            )
            assert sample(outbox.metrics, "doormail_smtp_up") == 0
            assert sample(outbox.metrics, "doormail_smtp_unreachable_seconds") >= 0.9
            status = ServerWatch(outbox.engine).status()
            assert status.state == "unreachable" and status.waiting == 300
            assert "421" in (status.last_error or "")
        await eventually(lambda: outbox.admin.counts()["sent"] == 300, within=30)
    assert sample(outbox.metrics, "doormail_smtp_up") == 1


async def test_two_workers_share_one_probe(outbox: Outbox, server: Server, down: Down) -> None:
    first = make_worker(outbox, smtp_to(server.port), probes=PROBES)
    second = make_worker(outbox, smtp_to(server.port), probes=PROBES)
    async with started(first), started(second):
        async with outage(down, server):
            ids = enqueue(outbox, first, count=50)
            await asyncio.sleep(1.0)
            assert 3 <= down.connections <= 6  # as many as one worker alone makes
        await eventually(lambda: outbox.admin.counts()["sent"] == len(ids), within=30)


async def test_mail_waiting_for_the_server_leaves_within_a_second_of_its_return(
    outbox: Outbox, server: Server, down: Down
) -> None:
    worker = make_worker(outbox, smtp_to(server.port), probes=PROBES)
    async with started(worker):
        async with outage(down, server):
            enqueue(outbox, worker, count=200)
            await asyncio.sleep(2.0)  # the probes are a ceiling (0.4 s) apart by now
        back = time.monotonic()
        while len(server.handler.received) < 200 and time.monotonic() - back < 5:
            await asyncio.sleep(0.005)
        took = time.monotonic() - back
        await eventually(lambda: outbox.admin.counts()["sent"] == 200)
    assert len(server.handler.received) == 200
    assert took <= 1.0 + PROBES.ceiling, f"drained {took:.2f} s after the server's return"
    # Over the connection the probe opened, kept: not one per mail.
    assert len(server.handler.connections) <= 2


async def test_a_mail_deferred_by_a_4xx_to_itself_keeps_its_own_back_off(
    outbox: Outbox, server: Server, down: Down
) -> None:
    server.start()
    worker = make_worker(outbox, smtp_to(server.port), probes=PROBES)
    server.handler.rcpt_replies = ["451 4.7.1 Greylisted, try again later"]
    async with started(worker):
        [greylisted] = enqueue(outbox, worker)
        [kept] = await settled(
            outbox, [greylisted], lambda item: item.status == "queued" and item.attempts == 1
        )
        assert kept.status == "queued" and kept.next_attempt_at >= time.time() + 50
        async with outage(down, server):
            ids = enqueue(outbox, worker, count=20)
            await asyncio.sleep(0.5)
        await settled(outbox, ids, is_final)
        still = outbox.admin.get(greylisted)
    assert still is not None and still.status == "queued"
    assert still.next_attempt_at == kept.next_attempt_at
    assert still.attempts == 1


async def test_a_change_of_the_smtp_settings_makes_queued_mail_due_at_once(
    outbox: Outbox, server: Server
) -> None:
    server.start()
    store: list[SettingsStore] = []
    worker = make_worker(outbox, lambda: store[0].load().smtp, probes=PROBES)

    def retry_now() -> None:
        ServerWatch(outbox.engine).retry_now()
        worker.notify()

    # As app.py wires it: the store calls back after a save that changed smtp.*.
    settings = SettingsStore(outbox.engine, on_smtp_change=retry_now)
    store.append(settings)
    settings.save(settings_to(settings, server.port))
    server.handler.rcpt_replies = ["451 4.3.0 Try again later"]
    async with started(worker):
        [deferred] = enqueue(outbox, worker)
        [item] = await settled(
            outbox, [deferred], lambda item: item.status == "queued" and item.attempts == 1
        )
        assert item.status == "queued" and item.next_attempt_at > time.time() + 50
        changed = time.monotonic()
        settings.save(settings_to(settings, server.port, longer=True))
        [sent] = await settled(outbox, [deferred], is_final, within=3.0)
        assert time.monotonic() - changed < 1.0
    assert sent.status == "sent"


async def test_an_unchanged_smtp_section_wakes_nothing(outbox: Outbox) -> None:
    woken: list[bool] = []
    settings = SettingsStore(outbox.engine, on_smtp_change=lambda: woken.append(True))
    current = settings_to(settings, 2525)
    settings.save(current)
    woken.clear()
    settings.save(model.apply_patch(settings.load(), {"device": {"name": "Door 2"}}))
    assert woken == []


async def test_mail_waiting_for_the_server_still_expires_at_its_deadline(
    outbox: Outbox, server: Server, down: Down
) -> None:
    worker = make_worker(outbox, smtp_to(server.port), probes=PROBES)
    async with outage(down, server), started(worker):
        ids = enqueue(outbox, worker, count=3, deliver_in=0.8)
        expired = await settled(outbox, ids, is_final, within=5.0)
    assert {item.status for item in expired} == {"expired"}
    assert {item.attempts for item in expired} == {0}
    assert all((item.last_error or "").startswith("SMTP server unreachable") for item in expired)


async def test_retry_all_now_probes_at_once_and_keeps_nothing_back(
    outbox: Outbox, server: Server, down: Down
) -> None:
    worker = make_worker(
        outbox, smtp_to(server.port), probes=ProbePolicy(first=10, factor=1, ceiling=10)
    )
    async with started(worker):
        async with outage(down, server):
            ids = enqueue(outbox, worker, count=5, deliver_in=DAY)
            await settled(outbox, ids, lambda item: item.last_error is not None)
            seen = down.connections
        # The next probe would be 10 s away: "Retry all now" makes it now.
        assert ServerWatch(outbox.engine).retry_now() == 5
        worker.notify()
        asked = time.monotonic()
        await settled(outbox, ids, is_final, within=3.0)
    assert time.monotonic() - asked < 1.0
    assert seen == 1


def settings_to(store: SettingsStore, port: int, *, longer: bool = False) -> model.Settings:
    """The stored settings with smtp.* pointing at 127.0.0.1:`port` (`longer` changes another
    smtp setting too, so that the section differs on the same port)."""
    smtp: dict[str, object] = {
        "enabled": True,
        "server": "127.0.0.1",
        "port": port,
        "security": "none",
        "from": "door@example.org",
    }
    if longer:
        smtp["deliver_in"] = 3 * DAY
    return model.apply_patch(store.load(), {"smtp": smtp})
