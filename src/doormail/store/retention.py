"""Bounded storage (SPEC section 11): finished mail older than `storage.keep_sent_days` and
events older than `storage.keep_events_days` are deleted in the background, a small batch per
transaction, so that intake never waits behind a long delete (on SQLite every write takes the
one write lock) and a year at 10,000 mails a day keeps the database bounded. Each batch is found
through an index (outbox by state and creation time, events by reception time)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from sqlalchemy import Engine, delete, select

from doormail.settings import Storage
from doormail.store import tables
from doormail.store.failures import cause, unavailable

# Rows per transaction: a few milliseconds of the write lock, even with pictures in the bodies.
BATCH = 200
# How often the old rows are looked for when the last round found none to delete.
INTERVAL = 60.0
# The pause between two full batches, in which waiting intake commits take the write lock.
BETWEEN_BATCHES = 0.05
DAY = 86400.0

log = logging.getLogger("doormail.retention")

_outbox = tables.outbox.c
_events = tables.events.c


class Retention:
    """Deletes what is older than `storage()` keeps: mail in one of the `finished` states
    (handed over by the wiring: the outbox owns its states) and events."""

    def __init__(
        self,
        engine: Engine,
        storage: Callable[[], Storage],
        finished: Sequence[str],
        *,
        batch: int = BATCH,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._storage = storage
        self._finished = tuple(finished)
        self._batch = batch
        self._interval = interval
        self._clock = clock

    def prune_batch(self, now: float | None = None) -> int:
        """Delete at most one batch of old mail of each finished state and one of old events,
        each in a transaction of its own; how many rows went."""
        now = self._clock() if now is None else now
        storage = self._storage()
        mail_before = now - storage.keep_sent_days * DAY
        deleted = sum(self._prune_mail(status, mail_before) for status in self._finished)
        return deleted + self._prune_events(now - storage.keep_events_days * DAY)

    def prune_all(self, now: float | None = None) -> int:
        """Every old row, batch after batch (the CLI and tests; the service uses `run`)."""
        total = 0
        while deleted := self.prune_batch(now):
            total += deleted
        return total

    async def run(self) -> None:
        """Prune until cancelled: batch after batch with a pause between, then once an interval."""
        while True:
            try:
                deleted = await asyncio.to_thread(self.prune_batch)
            except Exception as error:
                message = unavailable(error)
                if message is None:
                    log.exception("deleting old mail and events failed; trying again later")
                else:
                    log.warning("deleting old mail and events: %s (%s)", message, cause(error))
                deleted = 0
            await asyncio.sleep(BETWEEN_BATCHES if deleted else self._interval)

    def _prune_mail(self, status: str, before: float) -> int:
        old = (
            select(_outbox.id)
            .where(_outbox.status == status, _outbox.created_at < before)
            .order_by(_outbox.created_at)
            .limit(self._batch)
        )
        with self._engine.begin() as connection:
            ids = list(connection.execute(old).scalars())
            if ids:
                connection.execute(
                    delete(tables.outbox_messages).where(tables.outbox_messages.c.id.in_(ids))
                )
                connection.execute(delete(tables.outbox).where(_outbox.id.in_(ids)))
        return len(ids)

    def _prune_events(self, before: float) -> int:
        old = (
            select(_events.id)
            .where(_events.received_at < before)
            .order_by(_events.received_at)
            .limit(self._batch)
        )
        with self._engine.begin() as connection:
            ids = list(connection.execute(old).scalars())
            if ids:
                connection.execute(delete(tables.events).where(_events.id.in_(ids)))
        return len(ids)
