"""Where the configuration document lives: one row of the `settings` table. Changes are
validated by `doormail.settings` before they get here and are written in one transaction."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, insert, select, update

from doormail.settings import Settings, validate
from doormail.store import tables
from doormail.store.engine import reading

_ROW = 1
_DOCUMENT = select(tables.settings.c.document).where(tables.settings.c.id == _ROW)


class SettingsStore:
    """Loads and saves the whole Settings document. Every event reads the settings, and another
    process may have changed them: each load reads the stored document, and validates it again
    only when it is not the one validated last (the Settings returned are then the same object:
    treat them as a value, as the settings functions do)."""

    def __init__(self, engine: Engine, *, on_smtp_change: Callable[[], None] | None = None) -> None:
        self._engine = engine
        # Called after a save that changed smtp.* (SPEC 8: queued mail is then due at once).
        self._on_smtp_change = on_smtp_change
        self._lock = threading.Lock()
        self._last: tuple[str | None, Settings] = (None, Settings())

    def load(self) -> Settings:
        with reading(self._engine) as connection:
            document = connection.execute(_DOCUMENT).scalar()
        with self._lock:
            last_document, last = self._last
        if document == last_document:
            return last
        settings = Settings() if document is None else validate(json.loads(document), stored=True)
        with self._lock:
            self._last = (document, settings)
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
        if self._on_smtp_change is not None and _smtp_of(before) != _smtp_of(document):
            self._on_smtp_change()


def _smtp_of(document: str | None) -> Any:
    """The smtp section of a stored document (the defaults' when none is stored yet)."""
    if document is None:
        return Settings().document().get("smtp")
    return json.loads(document).get("smtp")
