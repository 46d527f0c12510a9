"""The way in for events (SPEC section 4): validate, answer a repeated event `id` with its first
result, decide, render, take snapshots, compose, and queue every mail in the same transaction as
the event itself. An event is answered only once its mails are durably in the outbox."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.exc import IntegrityError

from doormail import rules, templates
from doormail.camera import Pictures
from doormail.compose import compose
from doormail.events import CallEnded, CallRinging, Event, parse_events
from doormail.mail import OutgoingMessage
from doormail.outbox import Queue
from doormail.settings import Settings
from doormail.store import reading, tables

if TYPE_CHECKING:
    from doormail.app import Service

Result = dict[str, Any]
# A call that rang but never ended is forgotten after this long.
_CALL_MEMORY = 86400.0


@dataclass(frozen=True)
class _Prepared:
    """An event that is new: its id, the settings it is decided under, and the decision."""

    event: Event
    event_id: str
    settings: Settings
    decision: rules.Decision


class Intake:
    """`service.intake`: the POST /api/events flow, also used by the other event sources."""

    def __init__(self, service: Service) -> None:
        self._service = service

    async def handle(self, raw: object) -> list[Result]:
        """The replies to one event or an array of them (decoded JSON); EventError names the
        first bad field, and then no event of the array is taken."""
        events, _ = parse_events(raw)
        return [await self.submit(event) for event in events]

    async def submit(self, event: Event) -> Result:
        """Take one validated event: `{"event_id", "emails": [{"id", "to", "status"}], "reason"}`."""
        taken = await asyncio.to_thread(self._take, event)
        if isinstance(taken, _Prepared):
            # Snapshots can take the camera a while: no transaction stays open meanwhile.
            snapshots = await self._snapshots(taken.decision.mails)
            taken = await asyncio.to_thread(self._store, taken, snapshots)
        result, fresh = taken
        if fresh:
            if result["emails"]:
                self._service.worker.notify()
            self._service.metrics.events_received.labels(type=event.type).inc()
        return result

    def _take(self, event: Event) -> _Prepared | tuple[Result, bool]:
        """Decide, and when no snapshot is needed queue the mails in the same transaction."""
        settings = self._service.settings.load()
        with self._service.engine.begin() as connection:
            if event.id is not None:
                earlier = _earlier_result(connection, event.id)
                if earlier is not None:
                    return earlier, False
            ringing_at = _ringing_at(connection, event, settings)
            users = self._service.users.on(connection)
            decision = rules.decide(event, settings, users, ringing_at=ringing_at)
            prepared = _Prepared(event, event.id or uuid.uuid4().hex, settings, decision)
            if any(mail.snapshots.attach for mail in decision.mails):
                return prepared
            return _store(connection, self._service.queue, prepared, {}), True

    def _store(
        self, prepared: _Prepared, snapshots: dict[tuple[Any, ...], Pictures]
    ) -> tuple[Result, bool]:
        try:
            with self._service.engine.begin() as connection:
                earlier = _earlier_result(connection, prepared.event_id)
                if earlier is not None:
                    return earlier, False
                return _store(connection, self._service.queue, prepared, snapshots), True
        except IntegrityError:
            # The same event id arrived twice at once (PostgreSQL does not serialize the check
            # above); the other one's mails are the ones queued.
            with reading(self._service.engine) as connection:
                earlier = _earlier_result(connection, prepared.event_id)
            if earlier is None:
                raise
            return earlier, False

    async def _snapshots(self, mails: Sequence[rules.Mail]) -> dict[tuple[Any, ...], Pictures]:
        """One set of snapshots per span and setting (every recipient of an event sees the same
        pictures), only for the tabs that attach them."""
        taken: dict[tuple[Any, ...], Pictures] = {}
        for mail in mails:
            key = _snapshot_key(mail)
            if mail.snapshots.attach and key not in taken:
                width, height = (int(n) for n in mail.snapshots.resolution.split("x"))
                taken[key] = await self._service.camera.snapshots(
                    mail.span[0], mail.span[1], mail.snapshots.count, width, height
                )
        return taken


def _store(
    connection: Connection,
    outbox: Queue,
    prepared: _Prepared,
    snapshots: dict[tuple[Any, ...], Pictures],
) -> Result:
    """Queue the event's mails and record the event with its result, in the caller's
    transaction."""
    messages = [
        _message(prepared, mail, snapshots.get(_snapshot_key(mail)))
        for mail in prepared.decision.mails
    ]
    settings = prepared.settings
    now = time.time()
    items = outbox.enqueue(connection, messages, settings.smtp.deliver_in, now)
    result: Result = {
        "event_id": prepared.event_id,
        "emails": [{"id": i.id, "to": i.to, "status": i.status} for i in items],
        "reason": prepared.decision.reason,
    }
    _remember_call(connection, prepared.event, settings, now)
    connection.execute(
        insert(tables.events).values(
            id=prepared.event_id,
            type=prepared.event.type,
            received_at=now,
            result=json.dumps(result),
        )
    )
    return result


def _snapshot_key(mail: rules.Mail) -> tuple[Any, ...]:
    return (mail.span, mail.snapshots.count, mail.snapshots.resolution)


def _message(prepared: _Prepared, mail: rules.Mail, snapshots: Pictures | None) -> OutgoingMessage:
    """Render the mail's templates and build its message."""
    return compose(
        settings=prepared.settings,
        event_id=prepared.event_id,
        kind=mail.kind,
        recipient=mail.recipient,
        subject=templates.render(mail.subject_template, mail.values, html=False),
        html_body=templates.render(mail.body_template, mail.values, html=True),
        snapshots=snapshots.images if snapshots else (),
        at=prepared.event.at,
        notes=snapshots.notes if snapshots else (),
    )


def _earlier_result(connection: Connection, event_id: str) -> Result | None:
    stored = connection.execute(
        select(tables.events.c.result).where(tables.events.c.id == event_id)
    ).scalar()
    return None if stored is None else dict(json.loads(stored))


def _call_key(event: CallRinging | CallEnded, settings: Settings) -> tuple[str, str] | None:
    if event.call_id is None:
        return None
    return rules.device_name(event, settings), event.call_id


def _ringing_at(connection: Connection, event: Event, settings: Settings) -> float | None:
    """When the call that `event` ends started ringing, if its ringing was seen."""
    if not isinstance(event, CallEnded):
        return None
    key = _call_key(event, settings)
    if key is None:
        return None
    calls = tables.calls.c
    found = connection.execute(
        select(calls.ringing_at).where(calls.device == key[0], calls.call_id == key[1])
    ).scalar()
    return None if found is None else float(found)


def _remember_call(connection: Connection, event: Event, settings: Settings, now: float) -> None:
    """Keep a ringing call's start until it ends; forget it when it ends."""
    if not isinstance(event, CallRinging | CallEnded):
        return
    key = _call_key(event, settings)
    if key is None:
        return
    calls = tables.calls.c
    connection.execute(delete(tables.calls).where(calls.device == key[0], calls.call_id == key[1]))
    if isinstance(event, CallRinging):
        connection.execute(delete(tables.calls).where(calls.ringing_at < now - _CALL_MEMORY))
        connection.execute(
            insert(tables.calls).values(
                device=key[0], call_id=key[1], ringing_at=event.at.timestamp()
            )
        )
