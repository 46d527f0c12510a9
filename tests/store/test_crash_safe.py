"""Crash-safe writes (a delivered mail's outcome): committed without waiting for the disk, on a
connection kept for a round of delivery, which goes back to the pool as durable as it came; on
SQLite and on PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Connection, Engine

from doormail.store import give_back, kept_crash_safe


def _synchronous(engine: Engine, connection: Connection) -> str:
    if engine.dialect.name == "postgresql":
        return str(connection.exec_driver_sql("SHOW synchronous_commit").scalar())
    return {1: "normal", 2: "full"}[
        int(connection.exec_driver_sql("PRAGMA synchronous").scalar() or 0)
    ]


def test_a_kept_connection_commits_without_waiting_for_the_disk(engine: Engine) -> None:
    kept = kept_crash_safe(engine)
    try:
        with kept.begin():
            assert _synchronous(engine, kept) in ("off", "normal")
        with kept.begin():  # and again, for every write of the round
            assert _synchronous(engine, kept) in ("off", "normal")
    finally:
        give_back(kept)


def test_the_connection_given_back_commits_durably_again(engine: Engine) -> None:
    engine.pool.dispose()  # one connection in the pool: the next user gets the kept one back
    give_back(kept_crash_safe(engine))
    with engine.begin() as connection:
        # An event's commit is acknowledged only once it is on disk.
        assert _synchronous(engine, connection) in ("on", "full")
