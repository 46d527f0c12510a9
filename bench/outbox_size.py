"""The outbox with a million sent mails (SPEC section 11), on SQLite and on PostgreSQL: how long
the outbox view's first page (`outbox_page_1m_ms`, and of one state, `outbox_page_queued_1m_ms`)
and a `/metrics` scrape, whose depth gauge counts the mails by state (`metrics_1m_ms`), take;
the median of several, prefixed `sqlite_` and `pg_`. The rows are generated in SQL, as in
tests/outbox/test_indexes.py, which checks the same queries' plans."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, text

from bench.postgresql import postgres_database
from doormail.metrics import Metrics
from doormail.outbox import Admin
from doormail.store import open_engine, upgrade
from tests.outbox.test_indexes import _FILL, SENT_ROWS


def _median_ms(action: Callable[[], object], times: int) -> float:
    taken = []
    for _ in range(times):
        started = time.perf_counter()
        action()
        taken.append((time.perf_counter() - started) * 1000)
    return statistics.median(taken)


def _measure(engine: Engine, prefix: str) -> list[tuple[str, float, str]]:
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text(_FILL[engine.dialect.name]), {"rows": SENT_ROWS})
    analyze = "ANALYZE" if engine.dialect.name == "sqlite" else "VACUUM ANALYZE outbox"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(analyze))
    admin = Admin(engine)
    metrics = Metrics()
    metrics.watch_outbox(admin.counts)
    return [
        (f"{prefix}_outbox_page_1m_ms", round(_median_ms(admin.page, 20), 2), "ms"),
        (
            f"{prefix}_outbox_page_queued_1m_ms",
            round(_median_ms(lambda: admin.page("queued"), 20), 2),
            "ms",
        ),
        (f"{prefix}_metrics_1m_ms", round(_median_ms(metrics.render, 5), 2), "ms"),
    ]


def run() -> list[tuple[str, float, str]]:
    with tempfile.TemporaryDirectory(prefix="doormail-bench-") as folder:
        engine = open_engine(f"sqlite:///{Path(folder) / 'doormail.sqlite3'}")
        figures = _measure(engine, "sqlite")
        engine.dispose()
    with postgres_database() as url:
        engine = open_engine(url)
        figures += _measure(engine, "pg")
        engine.dispose()
    return figures


if __name__ == "__main__":
    for name, value, unit in run():
        print(name, value, unit)
