"""Where the configuration document lives: one row of the `settings` table. Changes are
validated by `doormail.settings` before they get here and are written in one transaction, which
also raises the `settings` change counter: every process sharing the database reads that counter
on each load and the document only when it moved."""

from __future__ import annotations

import json
import threading
import time

from sqlalchemy import Engine, insert, select, update

from doormail.settings import Settings, validate
from doormail.store import tables
from doormail.store.changes import counter, mark_changed
from doormail.store.engine import reading

_ROW = 1
_DOCUMENT = select(tables.settings.c.document).where(tables.settings.c.id == _ROW)
TOPIC = "settings"
# How long loaded settings are used without looking at the counter: a change made through
# another process applies within this (SPEC: within a second); one made here applies at once.
CHECK_EVERY = 0.5


class SettingsStore:
    """Loads and saves the whole Settings document. Every event reads the settings, and another
    process may have changed them: a load reads the change counter (at most every CHECK_EVERY
    seconds), and the document (to validate it again) only when the counter moved (the Settings
    returned are otherwise the same object: treat them as a value, as the settings functions
    do)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
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

    def save(self, settings: Settings) -> None:
        document = json.dumps(settings.document())
        now = time.time()
        with self._engine.begin() as connection:
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
