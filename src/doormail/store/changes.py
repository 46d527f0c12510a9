"""Telling processes that share one database that another one changed what they keep in memory:
one counter per topic (`settings`, `certificates`), raised in the transaction that makes the
change. A process reads the counter (one short row) where it would otherwise read the whole state
again, and rebuilds what it keeps only when the counter moved, so a change made through any
process applies in every other at its next use."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from doormail.store.engine import reading
from doormail.store.tables import changes

# How long what a process built from shared state is used without looking at its counter: a
# change made through another process applies within this (SPEC: within a second); one made
# through this process applies at once.
CHECK_EVERY = 0.5

_COUNTER = select(changes.c.counter).where(changes.c.topic == bindparam("topic"))


def _raise_statement(dialect: str) -> Any:
    """INSERT of a topic's first change, or +1 on its counter; one statement, so that two
    processes changing the same topic at once both count."""
    insert = {"postgresql": postgresql, "sqlite": sqlite}[dialect].insert(changes)
    return insert.values(topic=bindparam("topic"), counter=1).on_conflict_do_update(
        index_elements=[changes.c.topic], set_={"counter": changes.c.counter + 1}
    )


def mark_changed(connection: Connection, topic: str) -> None:
    """Count a change of `topic` inside the caller's transaction: it is seen when that commits."""
    connection.execute(_raise_statement(connection.dialect.name), {"topic": topic})


def counter(connection: Connection, topic: str) -> int:
    """How many changes of `topic` were committed so far (0 before the first)."""
    return int(connection.execute(_COUNTER, {"topic": topic}).scalar() or 0)


class ChangeWatch:
    """What one process last saw of a topic's counter: `moved()` says whether it changed since
    the previous call (True on the first), so that what was built from the state is built again."""

    def __init__(self, engine: Engine, topic: str) -> None:
        self._engine = engine
        self._topic = topic
        self._lock = threading.Lock()
        self._seen: int | None = None

    def current(self) -> int:
        with reading(self._engine) as connection:
            return counter(connection, self._topic)

    def moved(self) -> bool:
        now = self.current()
        with self._lock:
            moved, self._seen = now != self._seen, now
        return moved
