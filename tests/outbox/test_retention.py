"""Retention (SPEC section 11): sent, failed and expired mail older than storage.keep_sent_days
and events older than storage.keep_events_days are deleted, a small batch per transaction; mail
still to be sent and recent rows stay. On SQLite and on PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Engine, func, insert, select

from doormail.outbox import FINISHED, Admin, Queue
from doormail.settings import Storage
from doormail.store import tables
from doormail.store.retention import DAY, Retention
from tests.outbox.helpers import T0, mail, mark_failed, mark_sent, queue_committed


def _retention(engine: Engine, batch: int = 200) -> Retention:
    storage = Storage(keep_sent_days=30, keep_events_days=7)
    return Retention(engine, lambda: storage, FINISHED, batch=batch, clock=lambda: T0 + 40 * DAY)


def _events(engine: Engine, received: list[float]) -> None:
    rows = [
        {"id": f"ev-{n}", "type": "access", "received_at": at, "result": "{}"}
        for n, at in enumerate(received)
    ]
    with engine.begin() as connection:
        connection.execute(insert(tables.events), rows)


def _count(engine: Engine, table: object) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_finished_mail_older_than_keep_sent_days_is_deleted_with_its_bytes(
    engine: Engine, queue: Queue, admin: Admin
) -> None:
    old = queue_committed(engine, queue, [mail(f"r{n}@example.com") for n in range(3)], 3600, T0)
    queue.claim("w", 10, 60, now=T0)
    mark_sent(queue, old[0].id, "250 ok", now=T0 + 1)
    mark_failed(queue, old[1].id, "550 no such user", now=T0 + 1)
    queue.expire_overdue(now=T0 + 7200)  # the third: its lease ran out past its deadline
    waiting = queue_committed(engine, queue, [mail("late@example.com", "ev-2")], 90 * DAY, T0)
    recent = queue_committed(engine, queue, [mail("new@example.com", "ev-3")], 3600, T0 + 35 * DAY)

    assert _retention(engine).prune_all() == 3

    kept = {item.id for item in admin.page().items}
    assert kept == {waiting[0].id, recent[0].id}, "queued and recent mail stay"
    assert _count(engine, tables.outbox_messages) == 2


def test_events_older_than_keep_events_days_are_deleted(engine: Engine) -> None:
    _events(engine, [T0, T0 + 32 * DAY, T0 + 34 * DAY])
    assert _retention(engine).prune_all() == 2
    with engine.connect() as connection:
        assert list(connection.execute(select(tables.events.c.id)).scalars()) == ["ev-2"]


def test_old_rows_go_a_small_batch_per_transaction(engine: Engine) -> None:
    _events(engine, [T0 + n for n in range(25)])
    retention = _retention(engine, batch=10)
    assert [retention.prune_batch() for _ in range(4)] == [10, 10, 5, 0]
