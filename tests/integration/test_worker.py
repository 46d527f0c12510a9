"""The delivery worker against an in-process aiosmtpd server with scripted replies: retries on
4xx until sent once, 5xx failing for good, a server that comes up late, a deadline that passes,
a connection dropped after the 250, several mails over one connection, and that connection kept
between rounds (reused, replaced when the server closed it or the settings changed, closed when
idle or stopped)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine

from doormail.delivery.worker import DeliveryWorker, WorkerOptions
from doormail.metrics import Metrics
from doormail.outbox import Admin, OutboxItem, Queue, RetryPolicy
from doormail.outbox.server import ProbePolicy, ServerWatch
from doormail.settings import Smtp
from tests.conftest import free_port
from tests.outbox.helpers import queue_committed, unique_mail
from tests.scripted_smtp import Scripted

DAY = 86400.0


class Server:
    """A scripted server on a fixed port that a test can start late; `idle_timeout` is how
    long it keeps a connection without a command before closing it without a word, as
    aiosmtpd and many servers do."""

    def __init__(self, port: int, pipelining: bool) -> None:
        self.port = port
        self.handler = Scripted(pipelining=pipelining)
        self.idle_timeout = 300.0
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, timeout=self.idle_timeout
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture(params=[False, True], ids=["one-by-one", "pipelining"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """A port with nothing listening yet; `server.start()` brings the server up. Every test
    runs against a server without and with PIPELINING (RFC 2920)."""
    found = Server(free_port(), pipelining=request.param)
    try:
        yield found
    finally:
        found.stop()


@dataclass(frozen=True)
class Outbox:
    """The outbox the worker drains, and what the tests look at it with."""

    engine: Engine
    queue: Queue
    admin: Admin
    metrics: Metrics


@pytest.fixture
def outbox(engine: Engine) -> Outbox:
    """On SQLite and on PostgreSQL (the `engine` fixture's parameter)."""
    metrics = Metrics()
    # Quick retries, so that a test sees several attempts in well under a second.
    policy = RetryPolicy(floor=0.1, ceiling=0.2, jitter=0)
    return Outbox(engine, Queue(engine, policy=policy, metrics=metrics), Admin(engine), metrics)


def smtp_to(port: int) -> Smtp:
    return Smtp.model_validate(
        {
            "enabled": True,
            "server": "127.0.0.1",
            "port": port,
            "security": "none",
            "from": "door@example.org",
        }
    )


# Probes of an unreachable server a few times a second, so that a test sees several.
QUICK_PROBES = ProbePolicy(first=0.05, factor=2.0, ceiling=0.2)


def make_worker(
    outbox: Outbox,
    smtp: Smtp | Callable[[], Smtp],
    poll_interval: float = 0.05,
    connection_idle: float = 2.0,
    probes: ProbePolicy = QUICK_PROBES,
) -> DeliveryWorker:
    settings = smtp if callable(smtp) else (lambda: smtp)
    return DeliveryWorker(
        outbox.queue,
        settings,
        lambda _smtp: ssl.create_default_context(),
        options=WorkerOptions(
            poll_interval=poll_interval, timeout=5, connection_idle=connection_idle
        ),
        server=ServerWatch(outbox.engine, policy=probes),
    )


@contextlib.asynccontextmanager
async def started(worker: DeliveryWorker) -> AsyncIterator[asyncio.Task[None]]:
    """The worker's own loop for the length of the block, stopped (cancelled) after it."""
    task = asyncio.create_task(worker.run())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        assert loop.time() < deadline, "the condition did not come true"
        await asyncio.sleep(0.01)


@pytest.fixture
async def running(outbox: Outbox, server: Server) -> AsyncIterator[DeliveryWorker]:
    """The worker's own loop, running against the scripted server's port."""
    worker = make_worker(outbox, smtp_to(server.port))
    async with started(worker):
        yield worker


def enqueue(
    outbox: Outbox, worker: DeliveryWorker, count: int = 1, deliver_in: float = DAY
) -> list[str]:
    items = queue_committed(
        outbox.engine, outbox.queue, [unique_mail() for _ in range(count)], deliver_in
    )
    worker.notify()
    return [item.id for item in items]


async def settled(
    outbox: Outbox, ids: list[str], done: Callable[[OutboxItem], bool], within: float = 10.0
) -> list[OutboxItem]:
    """The items once `done` holds for each (fails after `within` seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        items = [outbox.admin.get(i) for i in ids]
        if all(item is not None and done(item) for item in items):
            return [item for item in items if item is not None]
        assert loop.time() < deadline, f"not settled: {items}"
        await asyncio.sleep(0.02)


def is_final(item: OutboxItem) -> bool:
    return item.status in ("sent", "failed", "expired")


async def test_mail_leaves_as_soon_as_it_is_committed(outbox: Outbox, server: Server) -> None:
    server.start()
    # A poll far longer than the test: only notify() can have woken the worker.
    worker = make_worker(outbox, smtp_to(server.port), poll_interval=60)
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.1)  # the worker's first round, with nothing to do, is over
        # Committed from another thread, as a FastAPI route running in the thread pool does.
        ids = await asyncio.to_thread(enqueue, outbox, worker)
        [item] = await settled(outbox, ids, is_final, within=5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert item.status == "sent"
    assert item.smtp_reply == "250 2.0.0 Ok: queued as SCRIPTED"


async def test_421_then_451_then_250_is_retried_and_received_exactly_once(
    outbox: Outbox, server: Server, running: DeliveryWorker
) -> None:
    server.handler.data_replies = ["421 4.3.2 System not accepting messages", "451 4.3.0 Try later"]
    server.start()
    ids = enqueue(outbox, running)
    [item] = await settled(outbox, ids, is_final)
    assert (item.status, item.attempts) == ("sent", 3)
    assert server.handler.data_commands == 3
    assert len(server.handler.received) == 1
    assert outbox.admin.message(item.id) == server.handler.received[0]


async def test_550_fails_without_retry_and_keeps_the_servers_text(
    outbox: Outbox, server: Server, running: DeliveryWorker
) -> None:
    server.handler.data_replies = ["550 5.7.1 Message rejected by policy"]
    server.start()
    ids = enqueue(outbox, running)
    [item] = await settled(outbox, ids, is_final)
    assert (item.status, item.attempts) == ("failed", 1)
    assert "550 5.7.1 Message rejected by policy" in (item.last_error or "")
    assert "550 5.7.1 Message rejected by policy" in (item.smtp_reply or "")
    await running.drain()  # a round that would retry it, if it were ever retried
    assert server.handler.data_commands == 1
    assert server.handler.received == []


async def test_mail_queued_while_the_server_is_down_is_sent_when_it_starts(
    outbox: Outbox, server: Server, running: DeliveryWorker
) -> None:
    ids = enqueue(outbox, running, count=3)
    waiting = await settled(outbox, ids, lambda item: item.last_error is not None)
    assert {item.status for item in waiting} <= {"queued", "sending"}
    assert (waiting[0].last_error or "").startswith("SMTP server unreachable since ")
    assert "connection" in (waiting[0].last_error or "").lower()
    server.start()
    sent = await settled(outbox, ids, is_final)
    assert {item.status for item in sent} == {"sent"}
    assert len(server.handler.received) == 3


async def test_mail_expires_when_deliver_in_passes_while_the_server_is_down(
    outbox: Outbox, server: Server, running: DeliveryWorker
) -> None:
    ids = enqueue(outbox, running, deliver_in=0.6)
    [item] = await settled(outbox, ids, is_final)
    assert item.status == "expired"
    # It waited for the server (probed, not tried) until the deadline, then was given up.
    assert item.attempts == 0
    assert (item.last_error or "").startswith("SMTP server unreachable since ")
    assert (
        outbox.metrics.registry.get_sample_value("doormail_mails_expired_total", {"kind": "call"})
        == 1
    )


async def test_a_connection_dropped_right_after_the_250_counts_as_sent_once(
    outbox: Outbox, server: Server, running: DeliveryWorker
) -> None:
    server.handler.drop_after_data = True
    server.start()
    ids = enqueue(outbox, running, count=3)
    items = await settled(outbox, ids, is_final)
    assert [item.status for item in items] == ["sent"] * 3
    # Each mail was received once: a dropped connection after the 250 is not a failure.
    assert sorted(server.handler.received) == sorted(outbox.admin.message(i) for i in ids)


async def test_several_due_mails_go_over_one_connection(outbox: Outbox, server: Server) -> None:
    server.start()
    worker = make_worker(outbox, smtp_to(server.port))
    ids = enqueue(outbox, worker, count=5)
    assert await worker.drain() == 5
    assert {outbox.admin.get(i).status for i in ids} == {"sent"}  # type: ignore[union-attr]
    assert len(server.handler.connections) == 1
    assert sorted(server.handler.received) == sorted(outbox.admin.message(i) for i in ids)


async def test_one_refused_mail_does_not_hold_up_the_others_on_the_connection(
    outbox: Outbox, server: Server
) -> None:
    server.handler.data_replies = ["250 2.0.0 first", "552 5.3.4 Message too big"]
    server.start()
    worker = make_worker(outbox, smtp_to(server.port))
    ids = enqueue(outbox, worker, count=3)
    await worker.drain()
    statuses = [outbox.admin.get(i).status for i in ids]  # type: ignore[union-attr]
    assert sorted(statuses) == ["failed", "sent", "sent"]
    assert len(server.handler.connections) == 1


async def test_a_refused_recipient_does_not_hold_up_the_next_mail(
    outbox: Outbox, server: Server
) -> None:
    server.handler.rcpt_replies = ["550 5.1.1 <nobody@example.com>: Recipient address rejected"]
    server.start()
    worker = make_worker(outbox, smtp_to(server.port))
    ids = enqueue(outbox, worker, count=2)
    await worker.drain()
    items = {item.status: item for item in (outbox.admin.get(i) for i in ids) if item is not None}
    assert sorted(items) == ["failed", "sent"]
    assert "Recipient address rejected" in (items["failed"].last_error or "")
    assert server.handler.received == [outbox.admin.message(items["sent"].id)]
    assert len(server.handler.connections) == 1


async def test_a_server_that_fails_the_session_is_tried_once_per_round_not_once_per_mail(
    outbox: Outbox,
) -> None:
    accepted = 0

    async def hang_up(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        writer.close()  # no greeting: the session fails before any mail

    listener = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        worker = make_worker(outbox, smtp_to(port))
        ids = enqueue(outbox, worker, count=4)
        assert await worker.drain() == 4
    finally:
        listener.close()
        await listener.wait_closed()
    items = [outbox.admin.get(i) for i in ids]
    assert {item.status for item in items if item is not None} == {"queued"}
    # The server did not greet: the mails wait for it, not counted as tried.
    assert {item.attempts for item in items if item is not None} == {0}
    assert accepted == 1


async def test_nothing_is_sent_while_smtp_is_disabled(outbox: Outbox, server: Server) -> None:
    server.start()
    disabled = smtp_to(server.port).model_copy(update={"enabled": False})
    worker = make_worker(outbox, disabled)
    ids = enqueue(outbox, worker)
    assert await worker.drain() == 0
    item = outbox.admin.get(ids[0])
    assert item is not None and item.status == "queued"
    assert server.handler.connections == []


async def test_a_stopped_worker_gives_back_the_mail_it_had_not_sent(
    outbox: Outbox, server: Server
) -> None:
    server.handler.data_delay = 0.02  # slow enough to stop the worker midway
    server.start()
    worker = DeliveryWorker(
        outbox.queue,
        lambda: smtp_to(server.port),
        lambda _smtp: ssl.create_default_context(),
        options=WorkerOptions(batch=5, timeout=5),
    )
    ids = enqueue(outbox, worker, count=12)
    drain = asyncio.create_task(worker.drain())
    while not server.handler.received:
        await asyncio.sleep(0.001)
    drain.cancel()
    await asyncio.gather(drain, return_exceptions=True)
    statuses = {item.status for item in (outbox.admin.get(i) for i in ids) if item is not None}
    assert statuses <= {"sent", "queued"}  # none left leased to a worker that is gone
    assert "queued" in statuses
    server.handler.data_delay = 0
    await worker.drain()
    assert {outbox.admin.get(i).status for i in ids} == {"sent"}  # type: ignore[union-attr]


async def test_mails_a_moment_apart_go_over_the_connection_kept_between_rounds(
    outbox: Outbox, server: Server
) -> None:
    server.start()
    worker = make_worker(outbox, smtp_to(server.port), poll_interval=60)
    async with started(worker):
        for _ in range(3):
            ids = enqueue(outbox, worker)
            await settled(outbox, ids, is_final)
            await asyncio.sleep(0.1)  # the round is over; the next mail starts another
    assert len(server.handler.received) == 3
    assert len(server.handler.connections) == 1
    await eventually(lambda: server.handler.quits == 1)  # closed when the worker stopped


@pytest.mark.parametrize("hang_up", ["421", "drop"])
async def test_a_kept_connection_the_server_hangs_up_on_costs_no_attempt(
    outbox: Outbox, server: Server, hang_up: str
) -> None:
    server.handler.hang_up_on_reuse = hang_up
    server.start()
    worker = make_worker(outbox, smtp_to(server.port), poll_interval=60)
    async with started(worker):
        first = enqueue(outbox, worker)
        await settled(outbox, first, is_final)
        # The worker believes the kept connection open; the server closes it at the next MAIL.
        second = enqueue(outbox, worker)
        [item] = await settled(outbox, second, is_final)
    assert (item.status, item.attempts) == ("sent", 1)
    assert sorted(server.handler.received) == sorted(
        outbox.admin.message(i) for i in first + second
    )
    assert len(server.handler.connections) == 2


async def test_a_connection_the_server_closed_while_idle_is_replaced(
    outbox: Outbox, server: Server
) -> None:
    server.idle_timeout = 0.2  # the server gives up on the connection before the worker does
    server.start()
    worker = make_worker(outbox, smtp_to(server.port), poll_interval=60)
    async with started(worker):
        first = enqueue(outbox, worker)
        await settled(outbox, first, is_final)
        await asyncio.sleep(0.5)
        second = enqueue(outbox, worker)
        [item] = await settled(outbox, second, is_final)
    assert (item.status, item.attempts) == ("sent", 1)
    assert len(server.handler.received) == 2
    assert len(server.handler.connections) == 2


async def test_an_idle_connection_is_closed_after_connection_idle(
    outbox: Outbox, server: Server
) -> None:
    server.start()
    worker = make_worker(outbox, smtp_to(server.port), poll_interval=60, connection_idle=0.2)
    async with started(worker):
        ids = enqueue(outbox, worker)
        await settled(outbox, ids, is_final)
        assert server.handler.quits == 0
        await eventually(lambda: server.handler.quits == 1, within=2)
        ids = enqueue(outbox, worker)
        await settled(outbox, ids, is_final)
    assert len(server.handler.connections) == 2


async def test_changed_settings_close_the_kept_connection_and_open_another(
    outbox: Outbox, server: Server
) -> None:
    other = Server(free_port(), pipelining=server.handler.pipelining)
    server.start()
    other.start()
    try:
        current = smtp_to(server.port)
        worker = DeliveryWorker(
            outbox.queue,
            lambda: current,
            lambda _smtp: ssl.create_default_context(),
            options=WorkerOptions(poll_interval=60, timeout=5),
        )
        async with started(worker):
            await settled(outbox, enqueue(outbox, worker), is_final)
            current = smtp_to(other.port)
            await settled(outbox, enqueue(outbox, worker), is_final)
            await eventually(lambda: server.handler.quits == 1)
            assert other.handler.quits == 0  # kept for the next round
        assert (len(server.handler.received), len(other.handler.received)) == (1, 1)
        assert len(other.handler.connections) == 1
    finally:
        other.stop()


async def test_a_drain_on_its_own_closes_its_connection(outbox: Outbox, server: Server) -> None:
    server.start()
    worker = make_worker(outbox, smtp_to(server.port))
    enqueue(outbox, worker, count=2)
    assert await worker.drain() == 2
    await eventually(lambda: server.handler.quits == 1)


async def test_security_none_needs_no_tls_context(outbox: Outbox, server: Server) -> None:
    def no_context(_smtp: Smtp) -> ssl.SSLContext:
        raise AssertionError("no TLS context is needed without TLS")

    server.start()
    worker = DeliveryWorker(
        outbox.queue, lambda: smtp_to(server.port), no_context, options=WorkerOptions(timeout=5)
    )
    ids = enqueue(outbox, worker)
    await worker.drain()
    assert outbox.admin.get(ids[0]).status == "sent"  # type: ignore[union-attr]


async def test_rounds_look_for_overdue_mail_once_a_poll_interval_and_claim_once_a_batch(
    outbox: Outbox, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"claim": 0, "expire_overdue": 0}
    for name in calls:
        original = getattr(outbox.queue, name)

        def counted(*args: Any, _name: str = name, _original: Any = original) -> Any:
            calls[_name] += 1
            return _original(*args)

        monkeypatch.setattr(outbox.queue, name, counted)
    server.start()
    worker = make_worker(outbox, smtp_to(server.port), poll_interval=60)
    for _ in range(3):
        enqueue(outbox, worker)
        assert await worker.drain() == 1
    # A batch shorter than the limit took everything due: no second claim to find none.
    assert calls == {"claim": 3, "expire_overdue": 1}


async def test_an_outcome_the_database_could_not_take_for_a_moment_is_saved_once_it_is_back(
    outbox: Outbox, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from doormail.delivery import worker as worker_module
    from doormail.outbox.queue import Recording

    monkeypatch.setattr(worker_module._Recorder, "RETRY_PAUSE", 0.05)
    save = Recording.save
    failures = iter(
        [OperationalError("UPDATE outbox", {}, Exception("server closed the connection"))]
    )

    def save_after_an_outage(recording: Recording, outcomes: Any) -> dict[str, str]:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return save(recording, outcomes)

    monkeypatch.setattr(Recording, "save", save_after_an_outage)
    server.start()
    worker = make_worker(outbox, smtp_to(server.port))
    task = asyncio.create_task(worker.run())
    try:
        ids = await asyncio.to_thread(enqueue, outbox, worker)
        [item] = await settled(outbox, ids, is_final, within=5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert (item.status, item.attempts) == ("sent", 1), "sent once, and recorded as sent"
    assert len(server.handler.received) == 1
