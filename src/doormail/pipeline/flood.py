"""Flood control as the commit writes it (SPEC section 9): which of an entry's mails go as usual
and which are `held` for a digest. `limits.per_recipient_per_hour`: the first mails of a clock
hour to one address go, later ones wait for the hour's digest. `limits.access_denied_burst`: the
first denied attempts within a minute at one device go, the attempts after them are collected
for one burst summary, due a minute after the last one (at the latest 10 minutes after the
first collected). Runs inside the commit's transaction, so that counting and holding are one
step; the digests themselves are made by `pipeline.digest`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, insert, select

from doormail.mail import OutgoingMessage
from doormail.outbox import Hold, Queue
from doormail.settings import Limits
from doormail.store import tables

HOUR = 3600.0
# A burst: denied attempts within a minute at one device; its summary goes a minute after the
# last, or BURST_LONGEST after its first collected attempt when they keep coming.
BURST_WINDOW = 60.0
BURST_LONGEST = 600.0
HOUR_GROUP = "hour"
BURST_GROUP = "burst"

_denied = tables.denied_accesses.c
_bursts = tables.bursts.c


@dataclass(frozen=True)
class Flood:
    """What flood control needs of an entry: the limits in force when it was decided, and the
    device when the entry is a denied access."""

    limits: Limits
    denied_at: str | None = None

    @property
    def active(self) -> bool:
        limits = self.limits
        burst = limits.access_denied_burst > 0 and self.denied_at is not None
        return limits.per_recipient_per_hour > 0 or burst


def hour_group(recipient: str, hour_start: float) -> str:
    return f"{HOUR_GROUP}:{int(hour_start)}:{recipient}"


def group_kind(group: str) -> str:
    """The kind of mail a group's digest is: `digest` (the hour's) or `burst_summary`."""
    return "burst_summary" if group.startswith(f"{BURST_GROUP}:") else "digest"


class FloodControl:
    """Holds mail under the limits, counting in the caller's transaction."""

    def __init__(self, queue: Queue) -> None:
        self._queue = queue

    def holds(
        self,
        connection: Connection,
        entries: Sequence[tuple[str, Flood | None, Sequence[OutgoingMessage]]],
        now: float,
    ) -> list[list[Hold | None]]:
        """For each (event id, flood, messages), each message's Hold or None (goes as usual),
        in order: an entry counts the ones before it in the same transaction."""
        hour_start = math.floor(now / HOUR) * HOUR
        capped = [
            m.recipient for _, f, ms in entries if f and f.limits.per_recipient_per_hour for m in ms
        ]
        mailed = self._queue.mailed_since(connection, capped, hour_start) if capped else {}
        answers: list[list[Hold | None]] = []
        for event_id, flood, messages in entries:
            holds: list[Hold | None] = [None] * len(messages)
            if flood is not None and flood.active:
                burst = self._burst(connection, event_id, flood, now)
                if burst is not None:
                    holds = [burst] * len(messages)
                cap = flood.limits.per_recipient_per_hour
                for index, message in enumerate(messages):
                    if holds[index] is not None or cap <= 0:
                        continue
                    sent = mailed.get(message.recipient, 0)
                    if sent >= cap:
                        group = hour_group(message.recipient, hour_start)
                        holds[index] = Hold(group, hour_start + HOUR)
                    else:
                        mailed[message.recipient] = sent + 1
            answers.append(holds)
        return answers

    def _burst(
        self, connection: Connection, event_id: str, flood: Flood, now: float
    ) -> Hold | None:
        """Count this denied attempt at its device; the burst's Hold once more than
        `access_denied_burst` came within a minute."""
        device, burst = flood.denied_at, flood.limits.access_denied_burst
        if device is None or burst <= 0:
            return None
        recent = connection.execute(
            select(func.count()).where(_denied.device == device, _denied.at > now - BURST_WINDOW)
        ).scalar_one()
        connection.execute(delete(tables.denied_accesses).where(_denied.at < now - BURST_LONGEST))
        connection.execute(insert(tables.denied_accesses), {"device": device, "at": now})
        if recent < burst:
            return None
        found = connection.execute(
            select(_bursts.hold_group, _bursts.first_at).where(_bursts.device == device)
        ).first()
        if found is None:
            group, first_at = f"{BURST_GROUP}:{device}:{event_id}", now
            connection.execute(
                insert(tables.bursts), {"device": device, "hold_group": group, "first_at": now}
            )
        else:
            group, first_at = str(found.hold_group), float(found.first_at)
        until = min(now + BURST_WINDOW, first_at + BURST_LONGEST)
        self._queue.extend_hold(connection, group, until)
        return Hold(group, until)


def end_burst(connection: Connection, group: str) -> None:
    """The burst `group` is summarised: the device's next burst starts a new one."""
    connection.execute(delete(tables.bursts).where(_bursts.hold_group == group))
