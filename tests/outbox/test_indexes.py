"""The outbox stays fast with a million sent rows (SPEC section 11): every query the outbox
view, the metrics, the worker and retention make is answered through an index, as EXPLAIN shows
on SQLite and on PostgreSQL; never by reading the whole table."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from doormail.outbox import FINISHED, Admin, Queue
from doormail.settings import Storage
from doormail.store.retention import Retention

SENT_ROWS = 1_000_000
NOW = 2_000_000.0

_COLUMNS = (
    "id, event_id, kind, recipient, sender, subject, message_id, status, attempts, created_at,"
    " deliver_by, next_attempt_at, sent_at"
)
_VALUES = (
    "'{g}' || g, 'ev-' || g, 'call', 'r' || g || '@example.com', 'door@example.org', 'Call',"
    " '<' || g || '@doormail>', 'sent', 1, g, g + 3600, g, g + 1"
)
_FILL = {
    "sqlite": (
        "WITH RECURSIVE n(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM n WHERE g < :rows)"
        f" INSERT INTO outbox ({_COLUMNS}) SELECT {_VALUES.format(g='m')} FROM n"
    ),
    "postgresql": (
        f"INSERT INTO outbox ({_COLUMNS}) SELECT {_VALUES.format(g='m')}"
        " FROM generate_series(1, :rows) AS n(g)"
    ),
}


@pytest.fixture
def million(engine: Engine) -> Iterator[Engine]:
    """The outbox with SENT_ROWS sent mails and the planner's statistics up to date."""
    dialect = engine.dialect.name
    with engine.begin() as connection:
        connection.execute(text(_FILL[dialect]), {"rows": SENT_ROWS})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE" if dialect == "sqlite" else "VACUUM ANALYZE outbox"))
    yield engine
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM outbox"))


def _statements(engine: Engine, action: Callable[[], Any]) -> list[tuple[str, Any]]:
    """The SELECTs `action` runs, with their parameters."""
    seen: list[tuple[str, Any]] = []

    def remember(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "WITH")):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", remember)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    assert seen, "the action ran no query"
    return seen


def _plan(engine: Engine, statement: str, parameters: Any) -> str:
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            return "\n".join(str(row[-1]) for row in rows)
        rows = connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
        return "\n".join(str(row[0]) for row in rows)


def _reads_the_whole_table(plan: str) -> bool:
    lines = plan.splitlines()
    sqlite_scan = any(line.startswith("SCAN outbox") and "INDEX" not in line for line in lines)
    return sqlite_scan or "Seq Scan on outbox" in plan


def _actions(engine: Engine) -> dict[str, Callable[[], Any]]:
    admin, queue = Admin(engine), Queue(engine)
    storage = Storage()
    retention = Retention(engine, lambda: storage, FINISHED, clock=lambda: 0.0)
    return {
        "the outbox view": admin.page,
        "the outbox view of sent mail": lambda: admin.page("sent"),
        "the outbox view of queued mail": lambda: admin.page("queued"),
        "the counts by state (metrics, UI)": admin.counts,
        "the worker's claim": lambda: queue.claim("w", 100, 30, now=NOW),
        "the worker's next due mail": queue.next_due,
        "expiry": lambda: queue.expire_overdue(now=NOW),
        "retention": retention.prune_batch,
    }


def test_with_a_million_sent_mails_every_outbox_query_goes_through_an_index(
    million: Engine,
) -> None:
    whole_table = {}
    for name, action in _actions(million).items():
        for statement, parameters in _statements(million, action):
            plan = _plan(million, statement, parameters)
            if _reads_the_whole_table(plan):
                whole_table[name] = plan
    assert not whole_table, whole_table
