"""The only write transaction of the deciding side: an event's row, whose id is the unique key
that catches a repeated event, the call it remembers or forgets, and its finished messages into
the outbox. Short by design: nothing is rendered, scaled or sent inside it, and everything it
writes is worked out before it begins. One writer takes every commit waiting and writes them in
one transaction, a few statements for all of them; when that transaction fails, it writes them
again one at a time, so that the commit at fault fails alone. The write lock is given up before
the disk is waited for: a second thread syncs once for every commit written meanwhile (one
fsync), and only then is each caller answered, so none is told before its commit is durable.
Also the reads the deciding side needs of the same tables, which take no write lock."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine, bindparam, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from doormail.mail import OutgoingMessage
from doormail.outbox import Hold, OutboxItem, Queue
from doormail.pipeline.flood import Flood, FloodControl
from doormail.store import durable_later, make_durable, parameters, reading, tables

# A call that rang but never ended is forgotten after this long.
CALL_MEMORY = 86400.0
# The most commits written in one transaction: enough to share an fsync among the commits that
# come in while one is written, few enough to hold the write lock for a millisecond or two.
MAX_GROUP = 8
# How long the writer and sync threads wait for more work before they end (new ones start on
# demand).
WRITER_IDLE = 1.0

T = TypeVar("T")

_events = tables.events.c
_calls = tables.calls.c
_EARLIER = select(_events.id, _events.result).where(
    _events.id.in_(bindparam("ids", expanding=True))
)
_RINGING = select(_calls.ringing_at).where(
    _calls.device == bindparam("device"), _calls.call_id == bindparam("call_id")
)
_FORGET_CALL = delete(tables.calls).where(
    _calls.device == bindparam("b_device"), _calls.call_id == bindparam("b_call_id")
)
_FORGET_OLD_CALLS = delete(tables.calls).where(_calls.ringing_at < bindparam("before"))
_REMEMBER_CALL = insert(tables.calls)
_RESULT = (
    update(tables.events)
    .where(_events.id == bindparam("b_id"))
    .values(result=bindparam("b_result"))
)


@dataclass(frozen=True)
class Queued:
    """One mail of an answer: its outbox entry, its address and its state."""

    id: str
    to: str
    status: str


@dataclass(frozen=True)
class Accepted:
    """The answer to an event or order (SPEC section 4): the mails it queued, or why none.
    `fresh` is False when the event's id was seen before and this is the earlier answer."""

    event_id: str
    emails: tuple[Queued, ...]
    reason: str | None
    fresh: bool = True

    def reply(self) -> dict[str, Any]:
        """`{"event_id", "emails": [{"id", "to", "status"}], "reason"}`."""
        return {
            "event_id": self.event_id,
            "emails": [{"id": m.id, "to": m.to, "status": m.status} for m in self.emails],
            "reason": self.reason,
        }


@dataclass(frozen=True)
class CallMemory:
    """A call's ringing, remembered from `ringing_at` until the call ends, or forgotten
    (`ringing_at` None) when it ends: its snapshots span from its ringing to its end."""

    device: str
    call_id: str
    ringing_at: float | None


@dataclass(frozen=True)
class Kept:
    """What the events list keeps of an event beside its answer: when it happened (UNIX
    seconds), the device, its own fields as JSON, and the addresses it concerns."""

    at: float
    device: str
    fields: str
    addresses: tuple[str, ...]

    def row(self) -> dict[str, Any]:
        joined = ",".join(address.lower() for address in self.addresses)
        return {
            "at": self.at,
            "device": self.device,
            "fields": self.fields,
            "addresses": f",{joined}," if joined else "",
        }


@dataclass(frozen=True)
class Entry:
    """What one way in commits: the event (`event_type` None for a Send E-Mail order, which
    leaves no event row), its finished messages and their deadline, the reason when there are
    none, and the call it remembers or forgets."""

    event_id: str
    event_type: str | None
    messages: tuple[OutgoingMessage, ...]
    deliver_in: float
    reason: str | None = None
    call: CallMemory | None = None
    # The limits it was decided under (flood control may hold its mails), None: no limits.
    flood: Flood | None = None
    kept: Kept | None = None


@dataclass(frozen=True)
class Recalled:
    """What the deciding side reads before it decides: the earlier answer to a repeated event
    id, and when the call an event ends started ringing."""

    earlier: Accepted | None
    ringing_at: float | None


_Pending = tuple[Entry, "concurrent.futures.Future[Accepted]"]
# A commit written, not yet known to be on disk: its caller's future and its answer.
_Written = tuple["concurrent.futures.Future[Accepted]", "Accepted"]


class _Batches(Generic[T]):
    """Work handed to a thread of its own, started on demand, which takes what is waiting in
    batches (at most `most` at a time) and ends once idle for WRITER_IDLE seconds."""

    def __init__(
        self, handle: Callable[[list[T]], None], name: str, *, most: int | None = None
    ) -> None:
        self._handle = handle
        self._name = name
        self._most = most
        self._waiting: collections.deque[T] = collections.deque()
        self._more = threading.Condition()
        self._running = False

    def add(self, items: Sequence[T]) -> None:
        with self._more:
            self._waiting.extend(items)
            if self._running:
                self._more.notify()
                return
            self._running = True
        threading.Thread(target=self._run, name=self._name, daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._more:
                if not self._waiting:
                    self._more.wait(WRITER_IDLE)
                if not self._waiting:
                    self._running = False
                    return
                taken = len(self._waiting) if self._most is None else self._most
                batch = [self._waiting.popleft() for _ in range(min(taken, len(self._waiting)))]
            self._handle(batch)


class _Plan:
    """One entry as its transaction writes it: the ids chosen for its outbox entries, the answer
    they make, and the event row that holds the answer."""

    def __init__(self, entry: Entry) -> None:
        self.entry = entry
        self.ids = [uuid.uuid4().hex for _ in entry.messages]
        self.holds: list[Hold | None] = [None] * len(entry.messages)
        emails = tuple(
            Queued(id, message.recipient, "queued")
            for id, message in zip(self.ids, entry.messages, strict=True)
        )
        self.accepted = Accepted(entry.event_id, emails, entry.reason)
        self.result = json.dumps(self.accepted.reply())

    def event_row(self, now: float) -> dict[str, Any]:
        entry = self.entry
        kept = entry.kept or Kept(now, "", "{}", ())
        return {
            "id": entry.event_id,
            "type": entry.event_type,
            "received_at": now,
            "result": self.result,
            "mails": len(entry.messages),
            **kept.row(),
        }

    def settle(self, connection: Connection, items: Sequence[OutboxItem]) -> None:
        """Name the outbox entries as they are. They differ from the ones chosen only when mail
        of this id was queued before without an event row (an event whose id an order had used)."""
        queued = tuple(Queued(item.id, item.to, item.status) for item in items)
        if queued == self.accepted.emails:
            return
        self.accepted = replace(self.accepted, emails=queued)
        if self.entry.event_type is not None:
            result = json.dumps(self.accepted.reply())
            connection.execute(_RESULT, {"b_id": self.entry.event_id, "b_result": result})


class Committer:
    """The event, call and outbox tables as the deciding side writes them, through one writer
    thread that groups the commits waiting. `observe_lock` hears, once per commit, how long the
    transaction it was written in held the database's write lock (seconds)."""

    def __init__(
        self,
        engine: Engine,
        queue: Queue,
        *,
        observe_lock: Callable[[float], None] | None = None,
        max_group: int = MAX_GROUP,
        clock: Callable[[], float] = time.time,
        sync: Callable[[], None] | None = None,
    ) -> None:
        self._engine = engine
        self._queue = queue
        self._observe_lock = observe_lock
        self._clock = clock
        self._sync = sync or functools.partial(make_durable, engine)
        self._writer = _Batches[_Pending](self._write, "doormail-commit", most=max_group)
        self._syncer = _Batches[_Written](self._answer_durable, "doormail-sync")
        self._event_insert = _event_insert(engine.dialect.name)
        self._flood = FloodControl(queue)

    # --- reading, before deciding ---------------------------------------------------------

    def recall(self, event_id: str | None, call: tuple[str, str] | None) -> Recalled:
        """The earlier answer to `event_id` and the ringing of `call` (device, call id), read
        from a snapshot without the write lock."""
        earlier = ringing = None
        with reading(self._engine) as connection:
            if event_id is not None:
                earlier = _earlier(connection, [event_id]).get(event_id)
            if call is not None and earlier is None:
                found = connection.execute(
                    _RINGING, {"device": call[0], "call_id": call[1]}
                ).scalar()
                ringing = None if found is None else float(found)
        return Recalled(earlier, ringing)

    # --- committing -----------------------------------------------------------------------

    async def commit(self, entry: Entry) -> Accepted:
        """Commit `entry` with the others waiting; returns once it is durable. A repeated
        event id gets the earlier answer (`fresh` False) and writes nothing. The commit goes on
        if the caller is cancelled meanwhile: a retry of the event then gets its answer."""
        return await asyncio.shield(asyncio.wrap_future(self.submit(entry)))

    def submit(self, entry: Entry) -> concurrent.futures.Future[Accepted]:
        """Hand `entry` to the writer; the future is done once its commit is on disk."""
        future: concurrent.futures.Future[Accepted] = concurrent.futures.Future()
        self._writer.add([(entry, future)])
        return future

    def _write(self, group: Sequence[_Pending]) -> None:
        group = [
            (entry, future) for entry, future in group if future.set_running_or_notify_cancel()
        ]
        if group:
            self._write_group(group)

    def _write_group(self, group: Sequence[_Pending]) -> None:
        try:
            answers, held = self._write_together([entry for entry, _ in group])
        except Exception as error:
            if len(group) == 1:
                group[0][1].set_exception(error)
            else:
                for pending in group:  # one at a time, so that the commit at fault fails alone
                    self._write_group([pending])
            return
        if self._observe_lock is not None:
            for _ in group:
                self._observe_lock(held)
        self._syncer.add(
            [(future, answer) for (_, future), answer in zip(group, answers, strict=True)]
        )

    def _answer_durable(self, written: Sequence[_Written]) -> None:
        """One sync for every commit written since the last, then their answers."""
        try:
            self._sync()
        except Exception as error:
            for future, _ in written:
                future.set_exception(error)
            return
        for future, answer in written:
            future.set_result(answer)

    def _write_together(self, entries: Sequence[Entry]) -> tuple[list[Accepted], float]:
        """`entries` in one transaction: their answers, and how long the write lock was held
        (seconds)."""
        plans = [_Plan(entry) for entry in entries]
        with durable_later(self._engine) as connection:
            with connection.begin():  # the write lock (SQLite: BEGIN IMMEDIATE) from here
                held_from = time.perf_counter()
                answers = self._write_plans(connection, plans, self._clock())
            held = time.perf_counter() - held_from
        return answers, held

    def _write_plans(
        self, connection: Connection, plans: Sequence[_Plan], now: float
    ) -> list[Accepted]:
        # The first entry of each event id writes its row; the unique key turns away one whose
        # id is stored already (another process took it), and a later entry of the group with
        # the same id is a repeat of the first.
        first: dict[str, _Plan] = {}
        for plan in plans:
            if plan.entry.event_type is not None:
                first.setdefault(plan.entry.event_id, plan)
        rows = [plan.event_row(now) for plan in first.values()]
        new = (
            set(connection.execute(self._event_insert, parameters(rows)).scalars())
            if rows
            else set()
        )
        stored = _earlier(connection, [id for id in first if id not in new])
        writing = [
            plan
            for plan in plans
            if plan.entry.event_type is None
            or (first[plan.entry.event_id] is plan and plan.entry.event_id in new)
        ]
        self._hold(connection, writing, now)
        self._enqueue(connection, writing, now)
        _remember(connection, [plan.entry.call for plan in writing if plan.entry.call], now)
        answers = []
        for plan in plans:
            event_id = plan.entry.event_id
            if plan in writing:
                answers.append(plan.accepted)
            elif event_id in stored:
                answers.append(stored[event_id])
            elif first[event_id] is not plan:
                answers.append(replace(first[event_id].accepted, fresh=False))
            else:
                raise RuntimeError(f"event {event_id!r} was neither written nor found")
        return answers

    def _hold(self, connection: Connection, plans: Sequence[_Plan], now: float) -> None:
        """Flood control's word on each message of the plans whose limits are set."""
        flooding = [p for p in plans if p.entry.messages and p.entry.flood and p.entry.flood.active]
        if not flooding:
            return
        entries = [(p.entry.event_id, p.entry.flood, p.entry.messages) for p in flooding]
        for plan, holds in zip(flooding, self._flood.holds(connection, entries, now), strict=True):
            plan.holds = holds

    def _enqueue(self, connection: Connection, plans: Sequence[_Plan], now: float) -> None:
        """The plans' messages into the outbox, one statement per deadline (they share one)."""
        by_deadline: dict[float, list[_Plan]] = {}
        for plan in plans:
            if plan.entry.messages:
                by_deadline.setdefault(plan.entry.deliver_in, []).append(plan)
        for deliver_in, sharing in by_deadline.items():
            messages = [message for plan in sharing for message in plan.entry.messages]
            ids = [id for plan in sharing for id in plan.ids]
            holds = [hold for plan in sharing for hold in plan.holds]
            items = iter(
                self._queue.enqueue(connection, messages, deliver_in, now, ids=ids, holds=holds)
            )
            for plan in sharing:
                plan.settle(connection, [next(items) for _ in plan.entry.messages])


def _event_insert(dialect: str) -> Any:
    """INSERT of an event row that does nothing when the id is there already, and returns the
    id it inserted (nothing for a repeated one)."""
    dialects = {"postgresql": postgresql, "sqlite": sqlite}
    return dialects[dialect].insert(tables.events).on_conflict_do_nothing().returning(_events.id)


def _earlier(connection: Connection, event_ids: Sequence[str]) -> dict[str, Accepted]:
    """The stored answers to these event ids."""
    if not event_ids:
        return {}
    answers = {}
    for row in connection.execute(_EARLIER, {"ids": list(event_ids)}):
        result = json.loads(row.result)
        emails = tuple(Queued(m["id"], m["to"], m["status"]) for m in result["emails"])
        answers[row.id] = Accepted(result["event_id"], emails, result["reason"], fresh=False)
    return answers


def _remember(connection: Connection, calls: Sequence[CallMemory], now: float) -> None:
    """Keep a ringing call's start until it ends; forget it when it ends. Of one call, the last
    word counts."""
    if not calls:
        return
    last = {(call.device, call.call_id): call for call in calls}
    keys = [{"b_device": device, "b_call_id": call_id} for device, call_id in last]
    connection.execute(_FORGET_CALL, keys)
    ringing = [
        {"device": call.device, "call_id": call.call_id, "ringing_at": call.ringing_at}
        for call in last.values()
        if call.ringing_at is not None
    ]
    if ringing:
        connection.execute(_FORGET_OLD_CALLS, {"before": now - CALL_MEMORY})
        connection.execute(_REMEMBER_CALL, ringing)
