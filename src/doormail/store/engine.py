"""Opening the database and bringing its schema up to date with Alembic."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import OperationalError

from doormail.store.datafolder import create_private_file

MIGRATIONS = Path(__file__).parent / "migrations"
# How long a transaction waits for another one's write lock before giving up.
_BUSY_SECONDS = 30
# The execution option that marks a connection as reading only (see `reading`).
_READ_ONLY = "doormail_read_only"
# The execution option of a transaction that must survive a crash of doormail, not of the
# machine (see `crash_safe`); and what a SQLite connection was last set to.
_CRASH_SAFE = "doormail_crash_safe"
_SYNC_NORMAL = "doormail_synchronous_normal"


def sqlite_url(data_dir: Path) -> str:
    """The embedded default: one SQLite file inside the data folder."""
    return f"sqlite:///{(data_dir / 'doormail.sqlite3').resolve()}"


def open_engine(url: str) -> Engine:
    """An engine for `url`. SQLite gets WAL with synchronous=FULL, because an event is
    acknowledged only once its mail is on disk, and a busy timeout so that several writers wait
    for each other instead of failing."""
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            path = Path(database)
            if path.parent.is_dir():
                # Made here and private: SQLite would make it by the umask, and its -wal
                # and -shm files take the database's mode.
                create_private_file(path)
        # Connections are kept open: closing the last connection to a WAL database checkpoints
        # it and deletes the WAL, which made every request pay several fsyncs (p50 from event
        # to the SMTP server's 250 went from seconds to ~30 ms at 50 events/s with a pool).
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": _BUSY_SECONDS},
            pool_size=8,
            max_overflow=48,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        if database and database != ":memory:":
            checkpoints = _Checkpoints(database)
            event.listen(engine, "connect", checkpoints.connected)
            event.listen(engine, "commit", checkpoints.committed)
            event.listen(engine, "engine_disposed", checkpoints.stop)
            if not database.startswith("file:"):
                wal = _WAL_SYNCS[engine] = _WalSync(Path(f"{database}-wal"))
                event.listen(engine, "engine_disposed", wal.close)
        writers = _Writers()
        event.listen(engine, "begin", writers.begin)
        event.listen(engine, "commit", writers.end)
        event.listen(engine, "rollback", writers.end)
        event.listen(engine.pool, "checkin", writers.checked_in)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def reading(engine: Engine) -> Connection:
    """A connection that only reads. On SQLite its transaction is a plain BEGIN, which in WAL
    mode reads a snapshot without waiting for the write lock: looking up a user or the settings
    does not queue behind a commit's fsync."""
    return engine.connect().execution_options(**{_READ_ONLY: True})


def crash_safe(engine: Engine) -> Connection:
    """A connection whose transactions survive doormail being killed but need not survive a
    power loss: SQLite commits them to the WAL without an fsync (synchronous=NORMAL; the next
    fsync or checkpoint takes them to disk), PostgreSQL without waiting for its WAL flush
    (synchronous_commit off). For what may be lost at a power loss without harm, at memory
    speed: a delivered mail's outcome, whose loss only sends that mail again."""
    connection = engine.connect().execution_options(**{_CRASH_SAFE: True})
    if connection.dialect.name == "postgresql":
        event.listen(connection, "begin", _asynchronous_commit)
    return connection


def durable_later(engine: Engine) -> Connection:
    """A connection whose commits release the write lock before they reach the disk, for a
    writer that calls `make_durable` before it tells anyone they are done. On SQLite it is a
    `crash_safe` one: its commit writes the WAL without the fsync that synchronous=FULL adds at
    the end of each commit, under the write lock; `make_durable` makes that same fsync
    afterwards, once for every commit made meanwhile. PostgreSQL has no such lock, and a
    database named by URI nothing to sync here: their commits wait for the disk as usual."""
    return crash_safe(engine) if engine in _WAL_SYNCS else engine.connect()


def make_durable(engine: Engine) -> None:
    """Bring every commit made so far (by `durable_later` connections) to disk: an fsync of
    SQLite's WAL, as synchronous=FULL makes at each commit. A commit whose frames a checkpoint
    has copied away since is on disk already (a checkpoint syncs the WAL before it copies and
    the database after), so a WAL begun again meanwhile covers it too."""
    wal = _WAL_SYNCS.get(engine)
    if wal is not None:
        wal.sync()


def parameters(rows: list[dict[str, Any]]) -> list[dict[str, Any]] | dict[str, Any]:
    """The parameters of a statement for `rows`: one row alone as a plain execute. SQLAlchemy
    runs a list as executemany, and an INSERT … RETURNING as its batching of many rows into
    one statement, which costs an event's transaction ~0.1 ms of Python for a single row."""
    return rows[0] if len(rows) == 1 else rows


def kept_crash_safe(engine: Engine) -> Connection:
    """A crash-safe connection (see `crash_safe`) kept for a run of writes of one statement
    each, every one in `with connection.begin()`; give it back with `give_back`. On PostgreSQL
    a statement commits by itself (autocommit, synchronous_commit off for the whole session):
    one round trip instead of five, so `begin()` there groups nothing. SQLite takes its write
    lock at each `begin()` as usual."""
    if engine.dialect.name != "postgresql":
        return crash_safe(engine)
    connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    connection.exec_driver_sql("SET synchronous_commit TO OFF")
    connection.commit()  # ends SQLAlchemy's own autobegun transaction, so begin() can follow
    return connection


def give_back(connection: Connection) -> None:
    """Return a connection from `kept_crash_safe` to the pool as it was taken; one that cannot
    be reset (the database went away) is closed instead of reused."""
    try:
        if connection.dialect.name == "postgresql" and not connection.invalidated:
            connection.exec_driver_sql("RESET synchronous_commit")
    except Exception:
        connection.invalidate()
    finally:
        connection.close()


def _asynchronous_commit(connection: Connection) -> None:
    connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling would defer BEGIN; we issue it ourselves.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(_BUSY_SECONDS * 1000)}")
    cursor.close()


class _Checkpoints:
    """Copies the WAL back into the database in a thread of its own. SQLite would do it in the
    commit that crosses 1,000 pages, holding the write lock while it writes and syncs the
    database file: one event's commit in about eighty waited for it (the p99 of the lock). A
    PASSIVE checkpoint runs beside readers and writers; it follows commits by about `EVERY`
    seconds, and sleeps while nothing is written."""

    EVERY = 1.0

    def __init__(self, database: str) -> None:
        self._database = database
        self._written = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()

    def connected(self, dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    def committed(self, _connection: Connection) -> None:
        self._written.set()
        if self._thread is None or not self._thread.is_alive():
            with self._guard:
                if self._thread is None or not self._thread.is_alive():
                    self._stopped.clear()
                    self._thread = threading.Thread(
                        target=self._run, name="doormail-checkpoint", daemon=True
                    )
                    self._thread.start()

    def stop(self, _engine: Engine | None = None) -> None:
        """Stop the thread (the engine is disposed); the next commit starts it again."""
        self._stopped.set()
        self._written.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _run(self) -> None:
        path = Path(self._database).resolve()
        try:
            # Read-write, never create: a database that is gone is not made again here.
            connection = sqlite3.connect(f"{path.as_uri()}?mode=rw", uri=True, timeout=5)
        except sqlite3.Error:
            return  # its folder was deleted: nothing is left to copy back
        try:
            while not self._stopped.is_set():
                self._written.wait()
                if self._stopped.wait(self.EVERY):
                    break
                self._written.clear()
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as error:
            if path.exists():
                # The commits' own WAL grows meanwhile; the next commit starts this thread again.
                logging.getLogger("doormail.store").warning(
                    "could not checkpoint the WAL: %s", error
                )
        finally:
            connection.close()


class _WalSync:
    """fdatasync of one database's WAL file, through a descriptor kept open; when the file at
    the WAL's path is a new one (the last connection closed and SQLite deleted the old), its
    folder is synced too, since a new file's name is durable only once its folder is (as
    SQLite does for a WAL it opens). Holding the old file open keeps its inode number from being
    given to the new one, so a new file is always told apart."""

    def __init__(self, wal: Path) -> None:
        self._wal = wal
        self._descriptor: int | None = None
        self._guard = threading.Lock()

    def sync(self) -> None:
        with self._guard:
            try:
                current = os.stat(self._wal)
            except FileNotFoundError:
                return  # the last connection closed: SQLite checkpointed (synced) and deleted it
            if self._descriptor is None or not os.path.samestat(
                os.fstat(self._descriptor), current
            ):
                self._open()
            assert self._descriptor is not None
            _data_sync(self._descriptor)

    def _open(self) -> None:
        self.close()
        self._descriptor = os.open(self._wal, os.O_RDONLY)
        folder = os.open(self._wal.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def close(self, _engine: Engine | None = None) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None

    def __del__(self) -> None:
        self.close()


def _data_sync(descriptor: int) -> None:
    # fdatasync where the system has it (what SQLite uses there); fsync elsewhere.
    getattr(os, "fdatasync", os.fsync)(descriptor)


# Each SQLite file engine's WAL sync, for as long as the engine lives.
_WAL_SYNCS: weakref.WeakKeyDictionary[Engine, _WalSync] = weakref.WeakKeyDictionary()


class _Writers:
    """Every transaction but a `reading` one takes SQLite's write lock at BEGIN (BEGIN
    IMMEDIATE), so that two claimers cannot both read a row as due. Within one process the threads first queue on a
    lock of their own: SQLite's busy handler waits by sleeping (1, 2, 5 … 100 ms) and polling,
    which under load turned a few milliseconds of work into hundreds of milliseconds of wait."""

    _HOLDS = "doormail_holds_writer_lock"

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def begin(self, connection: Connection) -> None:
        options = connection.get_execution_options()
        if options.get(_READ_ONLY):
            connection.exec_driver_sql("BEGIN")
            return
        # Set before BEGIN: the setting belongs to the connection, not to one transaction.
        normal = bool(options.get(_CRASH_SAFE))
        if connection.info.get(_SYNC_NORMAL, False) != normal:
            connection.exec_driver_sql(f"PRAGMA synchronous={'NORMAL' if normal else 'FULL'}")
            connection.info[_SYNC_NORMAL] = normal
        if not self._lock.acquire(timeout=_BUSY_SECONDS):
            raise OperationalError(
                "BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked")
            )
        connection.info[self._HOLDS] = True
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            self.end(connection)
            raise

    def end(self, connection: Connection) -> None:
        if connection.info.pop(self._HOLDS, False):
            self._lock.release()

    def checked_in(self, _dbapi_connection: Any, record: Any) -> None:
        # A connection back in the pool holds no transaction; should one have ended without
        # a commit or rollback event, its lock must not outlive it.
        if record.info.pop(self._HOLDS, False):
            self._lock.release()


def head_revision() -> str:
    """The newest migration's revision id, read from the file names (`000N_what.py`), whose
    prefix is the revision id by convention; a test holds the two together."""
    return max(path.name.split("_", 1)[0] for path in (MIGRATIONS / "versions").glob("0*_*.py"))


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when it has no schema yet."""
    try:
        with reading(engine) as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except OperationalError:
        return None
    except Exception as error:  # PostgreSQL's missing table is a ProgrammingError
        if "alembic_version" in str(error):
            return None
        raise


def upgrade(engine: Engine) -> None:
    """Apply every Alembic migration the database does not have yet. A database that is already
    current is left without importing Alembic, which would stay in the service's memory for good."""
    if current_revision(engine) == head_revision():
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
