"""The one storage layer: the engine, the tables and their Alembic migrations."""

from doormail.store.engine import open_engine, reading, upgrade
from doormail.store.tables import metadata

__all__ = ["metadata", "open_engine", "reading", "upgrade"]
