"""The one storage layer: the data folder (private), the engine, the tables and their Alembic
migrations, and the row that holds the settings document."""

from doormail.store.engine import (
    crash_safe,
    durable_later,
    give_back,
    kept_crash_safe,
    make_durable,
    open_engine,
    parameters,
    reading,
    upgrade,
)
from doormail.store.tables import metadata

__all__ = [
    "crash_safe",
    "durable_later",
    "give_back",
    "kept_crash_safe",
    "make_durable",
    "metadata",
    "open_engine",
    "parameters",
    "reading",
    "upgrade",
]
