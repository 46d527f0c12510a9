"""What the tests do to the outbox by hand: make a mail, queue it in a transaction of its own,
and record one attempt's outcome the way the worker records a batch."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Engine

from doormail.mail import OutgoingMessage
from doormail.metrics import Metrics
from doormail.outbox import OutboxItem, Outcome, Queue

T0 = 1_700_000_000.0
DAY = 86400.0


def mail(
    recipient: str = "alice@example.com", event_id: str = "ev-1", kind: str = "call"
) -> OutgoingMessage:
    return OutgoingMessage(
        event_id=event_id,
        kind=kind,
        sender="door@example.org",
        recipient=recipient,
        subject=f"Call for {recipient}",
        message_id=f"<{uuid.uuid4().hex}@doormail>",
        data=f"Subject: call\r\nTo: {recipient}\r\n\r\nRinging.\r\n".encode(),
    )


def unique_mail(recipient: str | None = None) -> OutgoingMessage:
    """A mail of an event of its own (to a new address unless `recipient` is given), its
    Message-ID in its bytes."""
    recipient = recipient or f"{uuid.uuid4().hex[:12]}@example.com"
    message_id = f"<{uuid.uuid4().hex}@doormail>"
    return OutgoingMessage(
        event_id=f"ev-{uuid.uuid4().hex}",
        kind="call",
        sender="door@example.org",
        recipient=recipient,
        subject="Call",
        message_id=message_id,
        data=f"Message-ID: {message_id}\r\nTo: {recipient}\r\nSubject: Call\r\n\r\nRinging.\r\n".encode(),
    )


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def queue_committed(
    engine: Engine,
    queue: Queue,
    messages: Sequence[OutgoingMessage],
    deliver_in: float,
    now: float | None = None,
) -> list[OutboxItem]:
    """Queue `messages` in a transaction of their own, committed when this returns."""
    with engine.begin() as connection:
        return queue.enqueue(connection, messages, deliver_in, now)


def mark_sent(queue: Queue, id: str, reply: str, *, now: float | None = None) -> bool:
    """The server accepted the mail; `reply` is its final answer (`250 2.0.0 Ok ...`)."""
    return bool(queue.record([Outcome(id, "sent", reply)], now=now))


def mark_temporary(
    queue: Queue,
    id: str,
    error: str,
    *,
    reply: str | None = None,
    owner: str | None = None,
    now: float | None = None,
) -> str | None:
    """A temporary failure; the new status (None when the mail was not being sent)."""
    return _record(queue, Outcome(id, "temporary", error, reply), owner, now)


def mark_failed(
    queue: Queue,
    id: str,
    error: str,
    *,
    reply: str | None = None,
    owner: str | None = None,
    now: float | None = None,
) -> bool:
    """A permanent failure: no more retries."""
    return _record(queue, Outcome(id, "failed", error, reply), owner, now) is not None


def _record(queue: Queue, outcome: Outcome, owner: str | None, now: float | None) -> str | None:
    return queue.record([outcome], owner=owner, now=now).get(outcome.id)


def queue_one(
    engine: Engine, queue: Queue, now: float = T0, deliver_in: float = DAY, **kwargs: str
) -> str:
    return queue_committed(engine, queue, [mail(**kwargs)], deliver_in, now=now)[0].id
