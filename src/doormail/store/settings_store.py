"""Where the configuration document lives: one row of the `settings` table. Changes are
validated by `doormail.settings` before they get here and are written in one transaction, which
also raises the `settings` change counter: every process sharing the database reads that counter
on each load and the document only when it moved."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, insert, select, update

from doormail.settings import Settings, validate
from doormail.store import tables
from doormail.store.changes import CHECK_EVERY, counter, mark_changed
from doormail.store.engine import reading

_ROW = 1
_DOCUMENT = select(tables.settings.c.document).where(tables.settings.c.id == _ROW)
TOPIC = "settings"


class SettingsStore:
    """Loads and saves the whole Settings document. Every event reads the settings, and another
    process may have changed them: a load reads the change counter (at most every CHECK_EVERY
    seconds), and the document (to validate it again) only when the counter moved (the Settings
    returned are otherwise the same object: treat them as a value, as the settings functions
    do)."""

    def __init__(self, engine: Engine, *, on_smtp_change: Callable[[], None] | None = None) -> None:
        self._engine = engine
        # Called after a save that changed smtp.* (SPEC 8: queued mail is then due at once).
        self._on_smtp_change = on_smtp_change
        self._lock = threading.Lock()
        self._last: tuple[int | None, Settings] = (None, Settings())
        self._checked_at = -CHECK_EVERY
        # Raised by each save here: a load that began before it keeps what it read to itself.
        self._saves = 0

    def load(self) -> Settings:
        now = time.monotonic()
        with self._lock:
            if self._last[0] is not None and now - self._checked_at < CHECK_EVERY:
                return self._last[1]
            saves = self._saves
        with reading(self._engine) as connection:
            seen = counter(connection, TOPIC)
            with self._lock:
                last_seen, last = self._last
            if seen == last_seen:
                with self._lock:
                    if saves == self._saves:
                        self._checked_at = now
                return last
            # Read after the counter: a change committed in between moves the counter again.
            document = connection.execute(_DOCUMENT).scalar()
        settings = Settings() if document is None else validate(json.loads(document), stored=True)
        with self._lock:
            if saves == self._saves:
                self._last = (seen, settings)
                self._checked_at = now
        return settings

    def saved(self) -> bool:
        """Whether settings were ever saved (a new installation runs on the defaults)."""
        with reading(self._engine) as connection:
            return connection.execute(_DOCUMENT).scalar() is not None

    def save(self, settings: Settings) -> None:
        document = json.dumps(settings.document())
        now = time.time()
        with self._engine.begin() as connection:
            before = connection.execute(_DOCUMENT).scalar()
            changed = connection.execute(
                update(tables.settings)
                .where(tables.settings.c.id == _ROW)
                .values(document=document, updated_at=now)
            ).rowcount
            if not changed:
                connection.execute(
                    insert(tables.settings).values(id=_ROW, document=document, updated_at=now)
                )
            mark_changed(connection, TOPIC)
        with self._lock:  # the next load here reads what was just saved
            self._last = (None, self._last[1])
            self._saves += 1
        if self._on_smtp_change is not None and _smtp_of(before) != _smtp_of(document):
            self._on_smtp_change()


def _smtp_of(document: str | None) -> Any:
    """The smtp section of a stored document (the defaults' when none is stored yet)."""
    if document is None:
        return Settings().document().get("smtp")
    return json.loads(document).get("smtp")
