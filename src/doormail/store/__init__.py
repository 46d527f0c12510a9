"""The one storage layer: the data folder (private), the engine, the tables and their Alembic
migrations, and the row that holds the settings document."""

from doormail.store.engine import (
    crash_safe,
    give_back,
    kept_crash_safe,
    open_engine,
    parameters,
    reading,
    upgrade,
)
from doormail.store.tables import metadata

__all__ = [
    "crash_safe",
    "give_back",
    "kept_crash_safe",
    "metadata",
    "open_engine",
    "parameters",
    "reading",
    "upgrade",
]
