"""The SMTP server as a whole (SPEC section 8), as every worker process sees it through the
database: up, or unreachable since a moment (connection refused, timeout, 421 at greeting) with
its last error and hint. While it is unreachable one probe connection at a time is made, its
turn taken in the database so that several workers make one between them, at a growing interval
(`ProbePolicy`); mail waiting for it is not claimed, and says so in its `last_error`. When it
answers, or the SMTP settings change, or someone asks for it ("Retry all now"), waiting mail is
due at once. It keeps state; it never speaks SMTP."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal

from sqlalchemy import Connection, Engine, case, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from doormail.store import reading
from doormail.store.tables import outbox
from doormail.store.tables import smtp_server as table

_ROW = 1
State = Literal["up", "unreachable"]

# The row is made on first use; two processes making it at once must not fail.
_INSERT_ROW = {
    "sqlite": sqlite.insert(table).on_conflict_do_nothing(),
    "postgresql": postgresql.insert(table).on_conflict_do_nothing(),
}


@dataclass(frozen=True)
class ProbePolicy:
    """Seconds between probes of an unreachable server: `first`, growing by `factor` per probe
    up to `ceiling` (SPEC: at most every 10 s). With the defaults a 2-minute outage takes
    17 probes, and a server that is back is noticed within 8 s."""

    first: float = 2.0
    factor: float = 1.5
    ceiling: float = 8.0

    def __post_init__(self) -> None:
        if not 0 < self.first <= self.ceiling <= 10.0:
            raise ValueError("probes need 0 < first <= ceiling <= 10 seconds")
        if self.factor < 1:
            raise ValueError("the probe interval's factor must be at least 1")

    def interval(self, probes: int) -> float:
        """Seconds until the next probe after `probes` probes of this outage."""
        return min(self.first * self.factor ** min(probes, 64), self.ceiling)


@dataclass(frozen=True)
class ServerState:
    """The server as last seen: `since` is when it became unreachable (None while up)."""

    state: State
    since: float | None = None
    last_error: str | None = None
    hint: str | None = None
    probes: int = 0
    next_probe_at: float | None = None

    @property
    def up(self) -> bool:
        return self.state == "up"

    def unreachable_seconds(self, now: float) -> float:
        return 0.0 if self.since is None else max(now - self.since, 0.0)


UP = ServerState("up")


@dataclass(frozen=True)
class ServerStatus:
    """The server as people see it (`GET /api/outbox`'s `server`, the Outbox and SMTP tabs):
    its state, since when (UNIX seconds) and for how long it has been unreachable, how many
    mails wait to be sent, the last error with its hint, and the outage's probes."""

    state: State
    since: float | None
    unreachable_seconds: float
    waiting: int
    last_error: str | None
    hint: str | None
    probes: int
    next_probe_at: float | None

    def public(self) -> dict[str, Any]:
        return asdict(self)

    def headline(self, zone: tzinfo) -> str | None:
        """ "SMTP server unreachable since 15:02 — 3,000 mails waiting" (None while it is up),
        the time in `zone` (the device's, as the mails' $DateTime$)."""
        if self.state == "up" or self.since is None:
            return None
        since = datetime.fromtimestamp(self.since, zone).strftime("%H:%M")
        mails = "mail" if self.waiting == 1 else "mails"
        return f"SMTP server unreachable since {since} — {self.waiting:,} {mails} waiting"


def waiting_text(since: float, error: str) -> str:
    """What a mail waiting for the server says in its `last_error`."""
    when = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"SMTP server unreachable since {when}: {error}"


class ServerWatch:
    """The shared state of the SMTP server and the outbox changes it makes."""

    def __init__(
        self,
        engine: Engine,
        *,
        policy: ProbePolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self.policy = policy or ProbePolicy()
        self._clock = clock

    def read(self) -> ServerState:
        with reading(self._engine) as connection:
            row = connection.execute(select(table).where(table.c.id == _ROW)).first()
        if row is None:
            return UP
        return ServerState(
            state="unreachable" if row.state == "unreachable" else "up",
            since=row.since,
            last_error=row.last_error,
            hint=row.hint,
            probes=row.probes,
            next_probe_at=row.next_probe_at,
        )

    def take_probe(self, now: float | None = None) -> bool:
        """Whether this caller makes the probe that is due now; the next one is scheduled in
        the same statement, so that no other worker makes it too (and a prober that dies does
        not stop the probing)."""
        now = self._clock() if now is None else now
        state = self.read()
        if state.up or (state.next_probe_at is not None and state.next_probe_at > now):
            return False
        probes = state.probes + 1
        with self._engine.begin() as connection:
            taken = connection.execute(
                update(table)
                .where(
                    table.c.id == _ROW,
                    table.c.state == "unreachable",
                    table.c.probes == state.probes,
                )
                .values(
                    probes=probes,
                    next_probe_at=now + self.policy.interval(probes),
                    updated_at=now,
                )
            ).rowcount
        return bool(taken)

    def unreachable(self, error: str, hint: str, now: float | None = None) -> ServerState:
        """The server did not answer (a round's connection or a probe): the outage begins, or
        goes on with this error. Queued mail that is due says it waits for the server."""
        now = self._clock() if now is None else now
        with self._engine.begin() as connection:
            _ensure_row(connection, now)
            row = connection.execute(
                select(table.c.state, table.c.since).where(table.c.id == _ROW).with_for_update()
            ).one()
            values: dict[str, Any] = {"last_error": error, "hint": hint, "updated_at": now}
            since = row.since
            if row.state != "unreachable" or since is None:
                since = now
                values.update(
                    state="unreachable",
                    since=now,
                    probes=0,
                    next_probe_at=now + self.policy.interval(0),
                )
            connection.execute(update(table).where(table.c.id == _ROW).values(**values))
            text = waiting_text(since, error)
            connection.execute(
                update(outbox)
                .where(
                    outbox.c.status == "queued",
                    outbox.c.next_attempt_at <= now,
                    or_(outbox.c.last_error.is_(None), outbox.c.last_error != text),
                )
                .values(last_error=text)
            )
        return self.read()

    def answered(self, now: float | None = None) -> bool:
        """The server answered: it is up again. Returns whether this ended an outage (the mail
        waiting for it is due already: it was never given a back-off for the outage)."""
        now = self._clock() if now is None else now
        with self._engine.begin() as connection:
            ended = connection.execute(
                update(table)
                .where(table.c.id == _ROW, table.c.state == "unreachable")
                .values(
                    state="up",
                    since=None,
                    last_error=None,
                    hint=None,
                    probes=0,
                    next_probe_at=None,
                    updated_at=now,
                )
            ).rowcount
        return bool(ended)

    def retry_now(self, now: float | None = None) -> int:
        """Every queued mail due at once, its back-off starting again, and an unreachable
        server probed at once (the SMTP settings changed, or someone asked): one mechanism.
        Returns how many mails are queued."""
        now = self._clock() if now is None else now
        with self._engine.begin() as connection:
            due = connection.execute(
                update(outbox)
                .where(outbox.c.status == "queued")
                .values(
                    # Mail due earlier keeps its place in the queue's order.
                    next_attempt_at=case(
                        (outbox.c.next_attempt_at > now, now), else_=outbox.c.next_attempt_at
                    ),
                    attempts=0,
                )
            ).rowcount
            connection.execute(
                update(table)
                .where(table.c.id == _ROW, table.c.state == "unreachable")
                .values(next_probe_at=now, updated_at=now)
            )
        return int(due)

    def status(self, now: float | None = None) -> ServerStatus:
        now = self._clock() if now is None else now
        state = self.read()
        return ServerStatus(
            state=state.state,
            since=state.since,
            unreachable_seconds=round(state.unreachable_seconds(now), 3),
            waiting=self.waiting(),
            last_error=state.last_error,
            hint=state.hint,
            probes=state.probes,
            next_probe_at=state.next_probe_at,
        )

    def waiting(self) -> int:
        """How many mails wait to be sent: queued (due, or kept back by their own back-off)."""
        with reading(self._engine) as connection:
            count = connection.execute(
                select(func.count()).where(outbox.c.status == "queued")
            ).scalar()
        return int(count or 0)


def _ensure_row(connection: Connection, now: float) -> None:
    statement = _INSERT_ROW.get(connection.dialect.name, insert(table))
    if connection.execute(select(table.c.id).where(table.c.id == _ROW)).first() is None:
        connection.execute(statement.values(id=_ROW, state="up", probes=0, updated_at=now))
