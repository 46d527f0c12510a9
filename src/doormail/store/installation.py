"""Whether a data folder (or a database URL) holds a doormail installation, found without
creating anything: every command but `serve` works on an existing installation (SPEC section 1),
so that one run from another working directory never fills a new, empty folder nobody reads."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import make_url
from sqlalchemy.exc import SQLAlchemyError

__all__ = ["NotInstalled", "describe", "require_installation"]

_HOW_TO_POINT = (
    "give the data folder with --data DIR or $DOORMAIL_DATA (or the database with --database"
    " URL or $DOORMAIL_DATABASE_URL), or run `doormail serve` once to create one there"
)


class NotInstalled(LookupError):
    """No doormail data where a command looked; the message says where and what to do."""


def describe(data_dir: Path, database_url: str) -> str:
    """The data folder (absolute) and, when it is elsewhere, the database; passwords hidden."""
    where = f"data folder {data_dir.resolve()}"
    if database_url.startswith("sqlite"):
        return where
    shown = make_url(database_url).render_as_string(hide_password=True)
    return f"{where}, database {shown}"


def require_installation(data_dir: Path, database_url: str) -> None:
    """Raise NotInstalled unless the database has doormail's schema. An SQLite file is looked at
    before it is opened, because opening it would create it."""
    if database_url.startswith("sqlite"):
        database = make_url(database_url).database or ""
        if not database or not Path(database).is_file():
            raise NotInstalled(
                f"no doormail data in {data_dir.resolve()} (looked for {Path(database).name}"
                f" there); {_HOW_TO_POINT}"
            )
    if _revision(data_dir, database_url) is None:
        raise NotInstalled(
            f"no doormail data in {describe(data_dir, database_url)}; {_HOW_TO_POINT}"
        )


def _revision(data_dir: Path, database_url: str) -> str | None:
    from doormail.store.engine import current_revision, open_engine

    engine = open_engine(database_url)
    try:
        # A database that cannot be reached is not one without doormail data: say which.
        with engine.connect():
            pass
        return current_revision(engine)
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        where = describe(data_dir, database_url)
        raise NotInstalled(f"cannot open the database ({where}): {reason}") from None
    finally:
        engine.dispose()
