"""Source leases: each event source (a 2N device, the MQTT subscription) is followed by one
process at a time. A holder renews its lease well before it runs out; when the holder dies its
lease runs out and another process takes the source over (SPEC 11: within 30 s). Also the state
a source keeps between pulls, written by the lease's holder only."""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from doormail.store import tables
from doormail.store.engine import reading

# A lease lasts this long; its holder renews it every RENEW_EVERY, and a process that does not
# hold it looks again every RENEW_EVERY, so a dead holder's source is taken over within
# LEASE_SECONDS + RENEW_EVERY (25 s).
LEASE_SECONDS = 20.0
RENEW_EVERY = 5.0

_leases = tables.source_leases
_state = tables.source_state


class Leases:
    """Take, renew and give back the leases of the sources `holder` follows."""

    def __init__(self, engine: Engine, holder: str, seconds: float = LEASE_SECONDS) -> None:
        self._engine = engine
        self.holder = holder
        self.seconds = seconds

    def take(self, source: str, now: float | None = None) -> bool:
        """Take or renew `source`'s lease; whether this holder has it now."""
        return source in self.take_all([source], now)

    def take_all(self, sources: Iterable[str], now: float | None = None) -> set[str]:
        """Take or renew the leases of `sources` in one short transaction (a few statements
        however many sources: a process may follow hundreds); those this holder has."""
        now = time.time() if now is None else now
        wanted = list(sources)
        if not wanted:
            return set()
        until = now + self.seconds
        mine = (_leases.c.holder == self.holder) | (_leases.c.expires_at < now)
        in_wanted = _leases.c.source.in_(wanted)
        with self._engine.begin() as connection:
            connection.execute(
                update(_leases)
                .where(in_wanted)
                .where(mine)
                .values(holder=self.holder, expires_at=until)
            )
            rows = connection.execute(select(_leases.c.source, _leases.c.holder).where(in_wanted))
            holders = {row.source: row.holder for row in rows}
            for source in wanted:
                if source not in holders and self._insert(connection, source, until):
                    holders[source] = self.holder
        return {source for source, holder in holders.items() if holder == self.holder}

    def _insert(self, connection: Connection, source: str, until: float) -> bool:
        try:
            with connection.begin_nested():
                connection.execute(
                    insert(_leases).values(source=source, holder=self.holder, expires_at=until)
                )
        except IntegrityError:
            return False  # another process inserted it first
        return True

    def release(self, source: str) -> None:
        """Give `source` back at once (a clean stop), so another process need not wait."""
        with self._engine.begin() as connection:
            connection.execute(
                delete(_leases)
                .where(_leases.c.source == source)
                .where(_leases.c.holder == self.holder)
            )

    def holder_of(self, source: str) -> str | None:
        """Who holds `source`'s lease now, if anyone."""
        with reading(self._engine) as connection:
            row = connection.execute(
                select(_leases.c.holder, _leases.c.expires_at).where(_leases.c.source == source)
            ).first()
        return row.holder if row is not None and row.expires_at >= time.time() else None


class SourceStates:
    """The JSON state each source keeps between pulls."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def load(self, source: str) -> str | None:
        with reading(self._engine) as connection:
            return connection.execute(
                select(_state.c.state).where(_state.c.source == source)
            ).scalar()

    def save(self, source: str, state: str) -> None:
        now = time.time()
        with self._engine.begin() as connection:
            changed = connection.execute(
                update(_state).where(_state.c.source == source).values(state=state, updated_at=now)
            ).rowcount
            if not changed:
                connection.execute(
                    insert(_state).values(source=source, state=state, updated_at=now)
                )
