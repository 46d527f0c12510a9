"""The one storage layer: the data folder (private), the engine, the tables and their Alembic
migrations, and the row that holds the settings document."""

from doormail.store.engine import open_engine, reading, upgrade
from doormail.store.tables import metadata

__all__ = ["metadata", "open_engine", "reading", "upgrade"]
