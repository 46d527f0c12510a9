"""Commits made durable after the write lock is given up: a `durable_later` connection commits
to SQLite's WAL without the fsync of synchronous=FULL, and `make_durable` makes that fsync
afterwards (of the WAL, and of its folder the first time); PostgreSQL commits as usual."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert

from doormail.store import durable_later, make_durable, open_engine, tables, upgrade
from doormail.store import engine as engine_module


def _synchronous(engine: Engine) -> str:
    with durable_later(engine) as connection, connection.begin():
        if engine.dialect.name == "postgresql":
            return str(connection.exec_driver_sql("SHOW synchronous_commit").scalar())
        return {1: "normal", 2: "full"}[
            int(connection.exec_driver_sql("PRAGMA synchronous").scalar() or 0)
        ]


def test_a_durable_later_commit_does_not_wait_for_the_disk_on_sqlite(engine: Engine) -> None:
    expected = "on" if engine.dialect.name == "postgresql" else "normal"
    assert _synchronous(engine) == expected


def test_other_commits_still_wait_for_the_disk(engine: Engine) -> None:
    engine.pool.dispose()  # one connection in the pool: the next commit gets the same one
    _synchronous(engine)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
        else:
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2


@contextmanager
def _migrated(url: str) -> Iterator[Engine]:
    """An engine on a new, migrated SQLite database at `url`, disposed of afterwards."""
    engine = open_engine(url)
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()


def _write_event(engine: Engine, event_id: str) -> None:
    with durable_later(engine) as connection, connection.begin():
        row = {"id": event_id, "type": "test", "received_at": 0.0, "result": "{}"}
        connection.execute(insert(tables.events), row)


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Path]]:
    """Every fdatasync and fsync `make_durable` makes: how, and of which file."""
    calls: list[tuple[str, Path]] = []
    real_fdatasync, real_fsync = os.fdatasync, os.fsync

    def fdatasync(descriptor: int) -> None:
        calls.append(("fdatasync", Path(os.readlink(f"/proc/self/fd/{descriptor}"))))
        real_fdatasync(descriptor)

    def fsync(descriptor: int) -> None:
        calls.append(("fsync", Path(os.readlink(f"/proc/self/fd/{descriptor}"))))
        real_fsync(descriptor)

    monkeypatch.setattr(engine_module.os, "fdatasync", fdatasync)
    monkeypatch.setattr(engine_module.os, "fsync", fsync)
    return calls


def test_make_durable_syncs_the_wal_and_its_folder_once(
    tmp_path: Path, synced: list[tuple[str, Path]]
) -> None:
    with _migrated(f"sqlite:///{tmp_path / 'doormail.sqlite3'}") as engine:
        for event_id in ("ev-1", "ev-2"):
            _write_event(engine, event_id)
            make_durable(engine)
    wal = (tmp_path / "doormail.sqlite3-wal").resolve()
    assert synced == [("fsync", wal.parent), ("fdatasync", wal), ("fdatasync", wal)]


def test_a_wal_made_anew_has_its_folder_synced_again(
    tmp_path: Path, synced: list[tuple[str, Path]]
) -> None:
    wal = tmp_path / "doormail.sqlite3-wal"
    wal.write_bytes(b"first")
    sync = engine_module._WalSync(wal)
    sync.sync()
    wal.unlink()  # as SQLite deletes it when the last connection closes, and makes it again
    wal.write_bytes(b"second")
    sync.sync()
    sync.close()
    folder = tmp_path.resolve()
    assert [how for how, _ in synced] == ["fsync", "fdatasync", "fsync", "fdatasync"]
    assert {path for _, path in synced} == {folder, folder / wal.name}


def test_a_database_named_by_uri_commits_durably_at_once(
    tmp_path: Path, synced: list[tuple[str, Path]]
) -> None:
    # Its file is the URI's business, not a path to sync here: nothing is left to do later.
    with _migrated(f"sqlite:///file:{tmp_path / 'doormail.sqlite3'}?uri=true") as named:
        assert _synchronous(named) == "full"
        make_durable(named)
    assert synced == []


def test_make_durable_syncs_a_sqlite_file_and_leaves_postgresql_alone(
    engine: Engine, synced: list[tuple[str, Path]]
) -> None:
    _write_event(engine, "ev-1")
    make_durable(engine)
    expected = [] if engine.dialect.name == "postgresql" else ["fsync", "fdatasync"]
    assert [how for how, _ in synced] == expected
