"""The one-time work of a first start (or of the first start after an upgrade): the database
migrated to the newest schema, a new installation's time zone taken from the machine and the
self-signed client certificate made. `doormail serve` does
it in a short-lived child process (`python -m doormail.firststart`), so that what it needs,
Alembic and the X.509 library, does not stay in the long-running service's memory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from doormail.certificates import SELF_SIGNED, Certificates
from doormail.settings import apply_patch
from doormail.store import open_engine, upgrade
from doormail.store.engine import current_revision, head_revision
from doormail.store.settings_store import SettingsStore

# Enough for Alembic to start and an EC key to be made on a slow or busy machine.
CHILD_TIMEOUT = 120.0


class FirstStartError(RuntimeError):
    """The database could not be migrated or the certificate made; says what went wrong."""


def is_done(engine: Engine, data_dir: Path) -> bool:
    """Whether the database has the newest schema and the self-signed certificate."""
    if current_revision(engine) != head_revision():
        return False
    return Certificates(engine, data_dir).has(SELF_SIGNED)


def prepare(engine: Engine, data_dir: Path) -> None:
    """Migrate the database, give a new installation the machine's time zone and make the
    self-signed certificate, in this process."""
    upgrade(engine)
    settings = SettingsStore(engine)
    if not settings.saved():
        device = {"timezone": machine_timezone(), "datetime_format": FIRST_DATETIME_FORMAT}
        settings.save(apply_patch(settings.load(), {"device": device}))
    Certificates(engine, data_dir).ensure_self_signed(settings.load().device.name)


# A new installation's $DateTime$ shows its zone (%Z), so that a reader never wonders which
# clock a time is on; the model's default stays SPEC's for documents that leave it out.
FIRST_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S %Z"


def machine_timezone() -> str:
    """The IANA name of this machine's time zone ($TZ, /etc/localtime, ...), or UTC when it
    cannot be told: an installer expects $DateTime$ in local time."""
    import tzlocal  # only at a first start, in its short-lived process

    try:
        name = tzlocal.get_localzone_name()
        ZoneInfo(name or "")
    except Exception:  # an unknown or odd set-up of the machine: UTC, as before
        return "UTC"
    return str(name)


def prepare_apart(data_dir: Path, database_url: str) -> None:
    """`prepare` in a child process; the URL goes by the environment, not the command line,
    since it may hold a password."""
    environment = {**os.environ, "DOORMAIL_DATA": str(data_dir)}
    environment["DOORMAIL_DATABASE_URL"] = database_url
    try:
        finished = subprocess.run(
            [sys.executable, "-m", "doormail.firststart"],
            env=environment,
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise FirstStartError(f"preparing the database failed: {error}") from None
    if finished.returncode != 0:
        lines = finished.stderr.strip().splitlines() or [f"exit status {finished.returncode}"]
        raise FirstStartError(f"preparing the database failed: {lines[-1]}")


def _main() -> None:
    data_dir = Path(os.environ["DOORMAIL_DATA"])
    engine = open_engine(os.environ["DOORMAIL_DATABASE_URL"])
    try:
        prepare(engine, data_dir)
    finally:
        engine.dispose()


if __name__ == "__main__":
    _main()
