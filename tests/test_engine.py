"""The SQLite engine: pooled connections, and transactions of one process queuing for the write
lock instead of polling SQLite's busy handler; a lock is never kept by a finished transaction."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select, text

from doormail.store import crash_safe, open_engine, reading, tables, upgrade
from doormail.store import engine as store_engine
from doormail.store.engine import sqlite_url


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    # A lock kept by mistake then fails a test at once instead of after 30 seconds.
    monkeypatch.setattr(store_engine, "_BUSY_SECONDS", 2)
    built = open_engine(sqlite_url(tmp_path))
    upgrade(built)
    return built


def test_writers_in_many_threads_all_commit(engine: Engine) -> None:
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for n in range(20):
                with engine.begin() as connection:
                    connection.execute(
                        insert(tables.events).values(
                            id=f"{worker}-{n}", type="t", received_at=0.0, result="{}"
                        )
                    )
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with engine.connect() as connection:
        assert len(connection.execute(select(tables.events.c.id)).all()) == 160


def test_a_read_closed_without_commit_leaves_the_lock_free(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    with engine.begin() as connection:
        connection.execute(text("SELECT 1"))


def test_a_reading_connection_does_not_wait_for_a_writer_and_sees_committed_rows(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_engine, "_BUSY_SECONDS", 0.2)
    row = {"type": "t", "received_at": 0.0, "result": "{}"}
    with engine.begin() as connection:
        connection.execute(insert(tables.events).values(id="committed", **row))
    with engine.begin() as writer:
        writer.execute(insert(tables.events).values(id="uncommitted", **row))
        # In the writer's thread, with its write lock held: an ordinary transaction would fail
        # to get the lock here (see the next tests); a reading one reads the last commit.
        with reading(engine) as reader:
            ids = reader.execute(select(tables.events.c.id)).scalars().all()
    assert ids == ["committed"]


def test_a_failed_transaction_leaves_the_lock_free(engine: Engine) -> None:
    with pytest.raises(RuntimeError), engine.begin() as connection:
        connection.execute(text("SELECT 1"))
        raise RuntimeError("the caller gives up")
    with engine.begin() as connection:
        assert connection.execute(text("SELECT 1")).scalar() == 1


def test_a_second_transaction_in_the_same_thread_waits_and_fails_cleanly(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_engine, "_BUSY_SECONDS", 0.2)
    locked = pytest.raises(store_engine.OperationalError, match="database is locked")
    with engine.begin() as first:
        first.execute(text("SELECT 1"))
        with locked, engine.begin() as second:
            second.execute(text("SELECT 1"))
    with engine.begin() as connection:
        assert connection.execute(text("SELECT 1")).scalar() == 1


def test_the_head_revision_read_from_file_names_is_alembics_head(tmp_path: Path) -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from doormail.store.engine import (
        MIGRATIONS,
        current_revision,
        head_revision,
        open_engine,
        upgrade,
    )

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == head_revision()
    engine = open_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    upgrade(engine)
    assert current_revision(engine) == head_revision()


def test_a_crash_safe_transaction_skips_the_fsync_and_the_next_one_has_it_again(
    tmp_path: Path,
) -> None:
    # Nothing else runs: the second transaction gets the pool's one connection back.
    engine = open_engine(f"sqlite:///{tmp_path / 'one.sqlite3'}")
    with crash_safe(engine) as connection, connection.begin():
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    with engine.begin() as connection:
        assert engine.pool.checkedin() == 0  # the same connection
        # An event's commit is acknowledged only once on disk: FULL again.
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2


def _in_the_database_file(path: Path, event_id: str) -> bool:
    """Whether the row is in the database file itself, not only in its WAL."""
    import sqlite3

    file = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        query = "SELECT count(*) FROM events WHERE id = ?"
        return bool(file.execute(query, (event_id,)).fetchone()[0])
    except sqlite3.OperationalError:  # not even the tables are there yet
        return False
    finally:
        file.close()


def _written(engine: Engine, event_id: str) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(tables.events).values(id=event_id, type="t", received_at=0.0, result="{}")
        )


def test_commits_leave_the_checkpoint_to_a_thread_that_follows_them_within_seconds(
    engine: Engine, tmp_path: Path
) -> None:
    with engine.connect() as connection:
        # An event's commit never copies the WAL into the database while it holds the lock.
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    _written(engine, "ev-1")
    deadline = time.monotonic() + 5
    while not _in_the_database_file(tmp_path / "doormail.sqlite3", "ev-1"):
        assert time.monotonic() < deadline, "the WAL was not checkpointed"
        time.sleep(0.05)


def test_an_engine_used_again_after_it_was_disposed_checkpoints_again(
    engine: Engine, tmp_path: Path
) -> None:
    _written(engine, "ev-1")
    engine.dispose()  # stops the thread
    _written(engine, "ev-2")
    deadline = time.monotonic() + 5
    while not _in_the_database_file(tmp_path / "doormail.sqlite3", "ev-2"):
        assert time.monotonic() < deadline, "the WAL was not checkpointed after the restart"
        time.sleep(0.05)


def test_a_database_whose_folder_was_deleted_is_neither_made_again_nor_complained_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import shutil

    monkeypatch.setattr(store_engine._Checkpoints, "EVERY", 0.05)
    folder = tmp_path / "data"
    folder.mkdir()
    engine = open_engine(sqlite_url(folder))
    upgrade(engine)
    shutil.rmtree(folder)
    folder.mkdir()  # an empty folder where the data was
    with contextlib.suppress(Exception):
        _written(engine, "ev-1")  # a commit after the deletion starts the thread again
    time.sleep(0.5)
    assert not (folder / "doormail.sqlite3").exists()
    assert "could not checkpoint" not in caplog.text
