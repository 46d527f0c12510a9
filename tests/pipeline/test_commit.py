"""The commit: an event's row, its call memory and its outbox rows in one transaction; a
repeated event id answered with the earlier result by the unique key, also when two processes
take it at once; commits waiting together written in one transaction, each answered after its
own, a failing one failing alone; on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, event, func, insert, select

from doormail.mail import OutgoingMessage
from doormail.outbox import Admin, OutboxError, Queue
from doormail.pipeline.commit import Accepted, CallMemory, Committer, Entry, Queued
from doormail.store import open_engine, tables

DAY = 86400.0


def message(recipient: str, event_id: str) -> OutgoingMessage:
    return OutgoingMessage(
        event_id=event_id,
        kind="call",
        sender="door@example.org",
        recipient=recipient,
        subject="Front door: call to 101",
        message_id=f"<{uuid.uuid4().hex}@example.org>",
        data=f"To: {recipient}\r\nSubject: call\r\n\r\nRinging.\r\n".encode(),
    )


def entry(event_id: str, *recipients: str, **fields: object) -> Entry:
    messages = tuple(message(recipient, event_id) for recipient in recipients)
    reason = None if recipients else "no recipient"
    return Entry(event_id, "call.ended", messages, DAY, reason, **fields)  # type: ignore[arg-type]


def committer(engine: Engine, observed: list[float] | None = None) -> Committer:
    return Committer(
        engine, Queue(engine), observe_lock=None if observed is None else observed.append
    )


def counted(engine: Engine, table: tables.Table) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


@pytest.fixture
def other_process(engine: Engine) -> Iterator[Engine]:
    """The same database opened again, as another process opens it (its own pool and, on
    SQLite, its own in-process writer lock)."""
    again = open_engine(engine.url.render_as_string(hide_password=False))
    try:
        yield again
    finally:
        again.dispose()


@pytest.fixture
def held(engine: Engine) -> Iterator[threading.Event]:
    """A transaction that holds up the writer until the event is set: it inserted the event
    `blocker` (PostgreSQL: the writer waits on that key) and holds the write lock (SQLite)."""
    release = threading.Event()
    holding = threading.Event()

    def hold() -> None:
        with engine.connect() as connection, connection.begin() as transaction:
            row = {"id": "blocker", "type": "test", "received_at": 0.0, "result": "{}"}
            connection.execute(insert(tables.events), row)
            holding.set()
            release.wait(10)
            transaction.rollback()

    thread = threading.Thread(target=hold)
    thread.start()
    holding.wait(10)
    try:
        yield release
    finally:
        release.set()
        thread.join()


async def test_an_event_is_committed_with_its_mails_and_its_answer(engine: Engine) -> None:
    accepted = await committer(engine).commit(
        entry("call-1", "alice@example.com", "bob@example.com")
    )
    assert accepted.fresh and accepted.reason is None
    assert [(m.to, m.status) for m in accepted.emails] == [
        ("alice@example.com", "queued"),
        ("bob@example.com", "queued"),
    ]
    admin = Admin(engine)
    for mail in accepted.emails:
        item = admin.get(mail.id)
        assert item is not None and (item.event_id, item.to) == ("call-1", mail.to)
        assert admin.message(mail.id).startswith(f"To: {mail.to}".encode())
    recalled = committer(engine).recall("call-1", None)
    assert recalled.earlier == Accepted("call-1", accepted.emails, None, fresh=False)


async def test_an_event_without_mail_is_kept_with_its_reason(engine: Engine) -> None:
    accepted = await committer(engine).commit(entry("call-2"))
    assert (accepted.emails, accepted.reason) == ((), "no recipient")
    assert counted(engine, tables.outbox) == 0
    assert committer(engine).recall("call-2", None).earlier == Accepted(
        "call-2", (), "no recipient", fresh=False
    )


async def test_a_repeated_event_id_gets_the_earlier_answer_and_queues_nothing(
    engine: Engine,
) -> None:
    first = await committer(engine).commit(entry("call-3", "alice@example.com"))
    again = await committer(engine).commit(entry("call-3", "bob@example.com", "carol@example.com"))
    assert again == Accepted("call-3", first.emails, None, fresh=False)
    assert counted(engine, tables.outbox) == 1
    assert counted(engine, tables.outbox_messages) == 1


async def test_two_processes_taking_the_same_event_id_queue_its_mail_once(
    engine: Engine, other_process: Engine
) -> None:
    first = await committer(engine).commit(entry("2n:door:1:7", "alice@example.com"))
    again = await committer(other_process).commit(entry("2n:door:1:7", "alice@example.com"))
    assert again == Accepted("2n:door:1:7", first.emails, None, fresh=False)
    assert counted(engine, tables.outbox) == 1


def test_two_processes_taking_the_same_event_id_at_once_get_one_answer(
    engine: Engine, other_process: Engine
) -> None:
    writers = [committer(engine), committer(other_process)]
    for round in range(10):
        event_id = f"mqtt:redelivered:{round}"
        start = threading.Barrier(2)
        answers: list[Accepted] = []

        def take(
            writer: Committer, into: list[Accepted], _id: str, _start: threading.Barrier
        ) -> None:
            _start.wait()
            into.append(writer.submit(entry(_id, "alice@example.com")).result(30))

        threads = [
            threading.Thread(target=take, args=(writer, answers, event_id, start))
            for writer in writers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(answer.fresh for answer in answers) == [False, True]
        assert answers[0].emails == answers[1].emails
    assert counted(engine, tables.outbox) == 10
    assert counted(engine, tables.outbox_messages) == 10


async def test_mail_queued_before_under_the_same_id_is_named_in_the_answer(
    engine: Engine,
) -> None:
    order = Entry("send-email-1", None, (message("alice@example.com", "send-email-1"),), DAY)
    [queued] = (await committer(engine).commit(order)).emails
    accepted = await committer(engine).commit(entry("send-email-1", "alice@example.com"))
    assert accepted.emails == (queued,)
    assert committer(engine).recall("send-email-1", None).earlier == Accepted(
        "send-email-1", (queued,), None, fresh=False
    )


async def test_a_ringing_call_is_remembered_until_it_ends(engine: Engine) -> None:
    writer = committer(engine)
    ringing = CallMemory("Front door", "7", 1741944400.0)
    await writer.commit(Entry("r-1", "call.ringing", (), DAY, "ringing", call=ringing))
    assert writer.recall("e-1", ("Front door", "7")).ringing_at == 1741944400.0
    assert writer.recall("e-1", ("Gate", "7")).ringing_at is None
    ended = CallMemory("Front door", "7", None)
    await writer.commit(entry("e-1", "alice@example.com", call=ended))
    assert writer.recall(None, ("Front door", "7")).ringing_at is None
    assert counted(engine, tables.calls) == 0


async def test_a_call_that_never_ended_is_forgotten_after_a_day(engine: Engine) -> None:
    writer = committer(engine)
    now = time.time()
    old = CallMemory("Front door", "1", now - DAY - 60)
    await writer.commit(Entry("r-1", "call.ringing", (), DAY, "ringing", call=old))
    new = CallMemory("Front door", "2", now)
    await writer.commit(Entry("r-2", "call.ringing", (), DAY, "ringing", call=new))
    with engine.connect() as connection:
        kept = connection.execute(select(tables.calls.c.call_id)).scalars().all()
    assert kept == ["2"]


async def test_commits_waiting_together_share_one_transaction(
    engine: Engine, held: threading.Event
) -> None:
    transactions: list[float] = []
    event.listen(engine, "commit", lambda _connection: transactions.append(time.time()))
    observed: list[float] = []
    writer = committer(engine, observed)
    blocked = writer.submit(entry("blocker", "first@example.com"))
    waiting = [writer.submit(entry(f"ev-{n}", f"r{n}@example.com")) for n in range(7)]
    held.set()
    answers = [future.result(30) for future in [blocked, *waiting]]
    assert [answer.fresh for answer in answers] == [True] * 8
    assert len(transactions) <= 2  # the blocker's, then at most one for the seven
    assert len(observed) == 8 and all(seconds > 0 for seconds in observed)
    assert counted(engine, tables.outbox) == 8


async def test_a_commit_that_fails_fails_alone(engine: Engine, held: threading.Event) -> None:
    writer = committer(engine)
    blocked = writer.submit(entry("blocker", "first@example.com"))
    good = writer.submit(entry("ev-good", "alice@example.com"))
    bad = writer.submit(Entry("ev-bad", "call.ended", (message("b@example.com", "ev-bad"),), 0))
    also_good = writer.submit(entry("ev-also-good", "carol@example.com"))
    held.set()
    with pytest.raises(OutboxError):
        bad.result(30)
    assert [f.result(30).fresh for f in (blocked, good, also_good)] == [True, True, True]
    assert committer(engine).recall("ev-bad", None).earlier is None
    assert counted(engine, tables.outbox) == 3


async def test_a_caller_is_answered_once_its_commit_is_durable(engine: Engine) -> None:
    writer = committer(engine)
    answers = await asyncio.gather(
        *(writer.commit(entry(f"ev-{n}", f"r{n}@example.com")) for n in range(20))
    )
    with engine.connect() as connection:
        ids = set(connection.execute(select(tables.outbox.c.id)).scalars())
    assert {mail.id for answer in answers for mail in answer.emails} == ids
    assert all(isinstance(mail, Queued) for answer in answers for mail in answer.emails)


class Disk:
    """A sync that waits until let through: how many syncs were made, and when one is waiting."""

    def __init__(self, error: Exception | None = None) -> None:
        self.syncs = 0
        self.waiting = threading.Event()
        self.through = threading.Event()
        self.error = error

    def sync(self) -> None:
        self.waiting.set()
        assert self.through.wait(30)
        self.syncs += 1
        if self.error is not None:
            raise self.error


def test_the_write_lock_is_given_up_before_the_caller_is_answered_at_the_sync(
    engine: Engine,
) -> None:
    disk = Disk()
    answer = Committer(engine, Queue(engine), sync=disk.sync).submit(
        entry("ev-1", "alice@example.com")
    )
    assert disk.waiting.wait(30)
    with engine.begin() as connection:  # another writer gets the lock meanwhile
        row = {"id": "other", "type": "test", "received_at": 0.0, "result": "{}"}
        connection.execute(insert(tables.events), row)
    assert counted(engine, tables.outbox) == 1
    assert not answer.done()  # written, not yet known to be on disk
    disk.through.set()
    assert answer.result(30).fresh and disk.syncs == 1


def test_commits_written_while_a_sync_runs_share_the_next_sync(engine: Engine) -> None:
    disk = Disk()
    writer = Committer(engine, Queue(engine), sync=disk.sync)
    first = writer.submit(entry("ev-1", "alice@example.com"))
    assert disk.waiting.wait(30)
    later = [writer.submit(entry(f"ev-{n}", f"r{n}@example.com")) for n in range(2, 6)]
    deadline = time.monotonic() + 30
    while counted(engine, tables.outbox) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    disk.through.set()
    assert all(future.result(30).fresh for future in [first, *later])
    assert disk.syncs == 2  # the first commit's, then one for the four written meanwhile


async def test_a_failed_sync_fails_its_callers_and_a_retry_gets_the_answer(
    engine: Engine,
) -> None:
    disk = Disk(OSError(5, "Input/output error"))
    disk.through.set()
    with pytest.raises(OSError, match="Input/output error"):
        await Committer(engine, Queue(engine), sync=disk.sync).commit(
            entry("ev-1", "alice@example.com")
        )
    again = await committer(engine).commit(entry("ev-1", "alice@example.com"))
    assert not again.fresh and len(again.emails) == 1
    assert counted(engine, tables.outbox) == 1


async def test_the_same_event_id_twice_in_one_transaction_is_queued_once(
    engine: Engine, held: threading.Event
) -> None:
    writer = committer(engine)
    blocked = writer.submit(entry("blocker", "first@example.com"))
    first = writer.submit(entry("mqtt:1", "alice@example.com"))
    again = writer.submit(entry("mqtt:1", "alice@example.com"))
    held.set()
    blocked.result(30)
    assert (first.result(30).fresh, again.result(30).fresh) == (True, False)
    assert again.result(30).emails == first.result(30).emails
    assert counted(engine, tables.outbox) == 2


async def test_of_one_call_in_one_transaction_the_last_word_counts(
    engine: Engine, held: threading.Event
) -> None:
    writer = committer(engine)
    blocked = writer.submit(entry("blocker", "first@example.com"))
    rang = CallMemory("Front door", "9", time.time())
    ringing = writer.submit(Entry("r-9", "call.ringing", (), DAY, "ringing", call=rang))
    ended = writer.submit(
        entry("e-9", "alice@example.com", call=CallMemory("Front door", "9", None))
    )
    other = CallMemory("Gate", "9", time.time())
    still = writer.submit(Entry("r-10", "call.ringing", (), DAY, "ringing", call=other))
    held.set()
    for future in (blocked, ringing, ended, still):
        future.result(30)
    with engine.connect() as connection:
        kept = connection.execute(select(tables.calls.c.device)).scalars().all()
    assert kept == ["Gate"]
