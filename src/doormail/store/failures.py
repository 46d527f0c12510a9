"""What a failure of the database means for the one who asked: SQLite out of space ("storage
full"), or the database server out of reach (PostgreSQL restarted, the connection cut). Both are
passing states the service answers with 503 and a clear message, never an internal error; the
engine's pool reconnects by itself (pre-ping) once the server is back, and nothing acknowledged
was lost, since an event is answered only after its commit."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

# What the database layer raises; the web layer answers these itself (not as unexpected errors).
DATABASE_ERRORS: tuple[type[Exception], ...] = (DBAPIError, DisconnectionError)
STORAGE_FULL = "storage full: the database's disk has no space left; nothing was stored"
UNAVAILABLE = "the database is unavailable (connection lost); nothing was stored, try again"


def unavailable(error: BaseException) -> str | None:
    """The message for a caller when `error` means the database cannot be used now (disk full,
    connection lost or refused), or None when it is some other fault."""
    if isinstance(error, DisconnectionError):
        return UNAVAILABLE
    if not isinstance(error, DBAPIError):
        return None
    text = str(error.orig if error.orig is not None else error).lower()
    if "database or disk is full" in text or "no space left" in text:
        return STORAGE_FULL
    if error.connection_invalidated or isinstance(error, OperationalError | InterfaceError):
        return UNAVAILABLE
    return None


def cause(error: BaseException) -> str:
    """The driver's own words for `error`, first line only: never the statement or its
    parameters, which may hold a secret being saved."""
    original = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    lines = str(original).strip().splitlines()
    return lines[0] if lines else type(original).__name__
