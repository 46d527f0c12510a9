"""A consistent copy of an installation and putting one back (SPEC section 1): on SQLite, the
online backup API copies the database while the service keeps taking events (in WAL mode the
copy reads one snapshot and writers do not wait for it); PostgreSQL has its own tool, pg_dump,
whose command line is given instead. A copy is restored only into an empty data folder, so that
nothing an installation holds is overwritten by mistake."""

from __future__ import annotations

import shlex
import sqlite3
from pathlib import Path

from sqlalchemy import URL, make_url

from doormail.store.datafolder import FILE_MODE, create_private_file, make_private
from doormail.store.engine import sqlite_url


class BackupError(RuntimeError):
    """Why no copy was made or put back; the message says what to do instead."""


def backup(database_url: str, target: Path) -> int:
    """Copy the SQLite database of `database_url` into `target` (made 0600, replaced if it is
    there); the number of pages copied."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        raise BackupError(pg_dump_advice(database_url, target))
    source_path = Path(url.database or "")
    if not source_path.is_file():
        raise BackupError(
            f"no doormail database at {source_path} (point doormail at its data folder with"
            " --data or $DOORMAIL_DATA, or at its database with --database)"
        )
    target.unlink(missing_ok=True)
    create_private_file(target)
    copy = sqlite3.connect(target)
    try:
        _copy_into(copy, source_path)
        pages = int(copy.execute("PRAGMA page_count").fetchone()[0])
    finally:
        copy.close()
    target.chmod(FILE_MODE)
    return pages


def restore(source_path: Path, data_dir: Path) -> Path:
    """Put the copy `source_path` back as the database of `data_dir`, which must hold no
    database yet; the database file made."""
    if not source_path.is_file():
        raise BackupError(f"no such file: {source_path}")
    target = Path(make_url(sqlite_url(data_dir)).database or "")
    if data_dir.exists() and any(data_dir.iterdir()):
        raise BackupError(
            f"{data_dir.resolve()} is not empty: restore into a new, empty data folder"
            " (--data or $DOORMAIL_DATA), then point doormail at it"
        )
    make_private(data_dir)
    create_private_file(target)
    copy = sqlite3.connect(target)
    try:
        _copy_into(copy, source_path)
        if copy.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise BackupError(f"{source_path} is damaged (its integrity check failed)")
        copy.execute("PRAGMA journal_mode=WAL")
    except BaseException:
        copy.close()
        target.unlink(missing_ok=True)
        raise
    copy.close()
    make_private(data_dir)
    return target


def pg_dump_advice(database_url: str, target: Path) -> str:
    """What to run instead on PostgreSQL (the password left out: pg_dump asks, or reads
    ~/.pgpass or $PGPASSWORD)."""
    given = make_url(database_url)
    url = URL.create(
        "postgresql", given.username, None, given.host, given.port, given.database, given.query
    )
    command = ["pg_dump", "--format=custom", "--file", str(target), url.render_as_string()]
    restore_command = ["pg_restore", "--dbname", "postgresql://…/NEW_DATABASE", str(target)]
    return (
        "the database is PostgreSQL: back it up with its own tool, pg_dump (consistent while "
        f"doormail runs):\n  {shlex.join(command)}\nand put it back into a new, empty database "
        f"with\n  {shlex.join(restore_command)}"
    )


def _copy_into(copy: sqlite3.Connection, source_path: Path) -> None:
    """The doormail database at `source_path`, opened read-only, copied into `copy` with
    SQLite's online backup (one consistent snapshot; writers do not wait for it)."""
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
    try:
        _check_is_doormail(source, source_path)
        source.backup(copy)
    finally:
        source.close()


def _check_is_doormail(connection: sqlite3.Connection, path: Path) -> None:
    try:
        connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError:
        raise BackupError(f"{path} is not a doormail database") from None
