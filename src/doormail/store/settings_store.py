"""Where the configuration document lives: one row of the `settings` table. Changes are
validated by `doormail.settings` before they get here and are written in one transaction."""

from __future__ import annotations

import json
import time

from sqlalchemy import Engine, insert, select, update

from doormail.settings import Settings, validate
from doormail.store import tables
from doormail.store.engine import reading

_ROW = 1


class SettingsStore:
    """Loads and saves the whole Settings document."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def load(self) -> Settings:
        with reading(self._engine) as connection:
            document = connection.execute(
                select(tables.settings.c.document).where(tables.settings.c.id == _ROW)
            ).scalar()
        if document is None:
            return Settings()
        return validate(json.loads(document), stored=True)

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
