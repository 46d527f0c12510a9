"""The outbox's SQL on the two sides of the hand-off: the deciding side enqueues finished
messages inside its own transaction; the delivering side claims due mail under a lease, renews
or releases it, records what each attempt came to, and expires what waited past its deadline."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Float,
    Integer,
    Text,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from doormail.mail import OutgoingMessage
from doormail.metrics import Metrics
from doormail.outbox.items import ITEM_COLUMNS, OutboxError, OutboxItem, item_of
from doormail.outbox.transitions import Attempted, Change, Outcome, RetryPolicy, next_change
from doormail.store import crash_safe, give_back, kept_crash_safe, parameters, reading
from doormail.store.tables import outbox as table
from doormail.store.tables import outbox_messages as bodies

log = logging.getLogger("doormail.outbox")

# The kinds of mail that carry `held` ones (flood control): a held mail ends as its digest does.
DIGEST_KINDS = ("digest", "burst_summary")


@dataclass(frozen=True)
class Hold:
    """Flood control's word on a mail being enqueued: held for the digest `group` (the event id
    the digest will have), which is due at `until`."""

    group: str
    until: float


@dataclass(frozen=True)
class HeldMail:
    """A held mail as its digest lists it."""

    id: str
    kind: str
    created_at: float
    subject: str
    data: bytes


@dataclass(frozen=True)
class Claimed:
    """A message handed to one worker under a lease: what the SMTP session needs to send it."""

    id: str
    kind: str
    sender: str
    recipient: str
    data: bytes
    attempts: int
    created_at: float
    deliver_by: float


_RECORD_COLUMNS = (
    table.c.id,
    table.c.kind,
    table.c.status,
    table.c.attempts,
    table.c.created_at,
    table.c.deliver_by,
    table.c.lease_owner,
    table.c.recipient,
)

# Every outcome is saved by this one statement, executed once for a whole batch; a value left
# None keeps what the row had (an earlier server reply, say).
_RECORD = (
    update(table)
    .where(table.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        sent_at=func.coalesce(bindparam("b_sent_at", type_=Float), table.c.sent_at),
        smtp_reply=func.coalesce(bindparam("b_reply", type_=Text), table.c.smtp_reply),
        last_error=func.coalesce(bindparam("b_error", type_=Text), table.c.last_error),
        next_attempt_at=func.coalesce(bindparam("b_next", type_=Float), table.c.next_attempt_at),
        attempts=table.c.attempts - bindparam("b_uncount", type_=Integer),
        lease_owner=None,
        lease_until=None,
    )
)


# Nearly every attempt ends with the server taking the mail: its outcome is one statement,
# which returns what the count and the log need and leaves every other case (a digest, whose
# held mails end with it; a mail already sent) to `Queue.record`.
_SENT = (
    update(table)
    .where(
        table.c.id == bindparam("b_id"),
        table.c.status != "sent",
        table.c.kind.not_in(DIGEST_KINDS),
    )
    .values(
        status="sent",
        sent_at=bindparam("b_sent_at", type_=Float),
        smtp_reply=bindparam("b_reply", type_=Text),
        lease_owner=None,
        lease_until=None,
    )
    .returning(table.c.id, table.c.kind, table.c.created_at, table.c.recipient)
)


# The unique (event_id, recipient) index turns a second enqueue of the same mail into a no-op
# instead of an error that would abort the caller's transaction; the ids inserted come back.
_INSERT = insert(table).returning(table.c.id)
_INSERT_NEW = {
    "sqlite": sqlite.insert(table).on_conflict_do_nothing().returning(table.c.id),
    "postgresql": postgresql.insert(table).on_conflict_do_nothing().returning(table.c.id),
}
# RETURNING makes one multi-row INSERT of the batch (SQLAlchemy's insertmanyvalues) instead of
# a statement per row, each of which gives up the interpreter lock and waits to get it back.
_INSERT_BODIES = insert(bodies).returning(bodies.c.id)


def _waiting(now: float) -> Any:
    """Mail that may be attempted: queued and due, or claimed by a worker whose lease ran out
    (it died while sending)."""
    return or_(
        and_(table.c.status == "queued", table.c.next_attempt_at <= now),
        and_(table.c.status == "sending", table.c.lease_until <= now),
    )


class Queue:
    """The outbox table as the two sides use it."""

    def __init__(
        self,
        engine: Engine,
        *,
        policy: RetryPolicy | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self._engine = engine
        self.policy = policy or RetryPolicy()
        self._metrics = metrics
        self._clock = clock

    # --- the deciding side ------------------------------------------------------------------

    def enqueue(
        self,
        connection: Connection,
        messages: Sequence[OutgoingMessage],
        deliver_in: float,
        now: float | None = None,
        *,
        ids: Sequence[str] | None = None,
        holds: Sequence[Hold | None] | None = None,
    ) -> list[OutboxItem]:
        """Queue `messages` inside the caller's transaction, so that they commit together with
        whatever caused them; `ids` names the new entries when the caller chose them (to name
        them in its own rows of the same transaction). A message whose (event id, recipient) is
        already queued is not queued twice; the existing entry is returned in its place."""
        if deliver_in <= 0:
            raise OutboxError("deliver_in must be a positive number of seconds", "deliver_in")
        if not messages:
            return []
        now = self._clock() if now is None else now
        ids = ids if ids is not None else [uuid.uuid4().hex for _ in messages]
        rows = [
            _row(id, message, now, now + deliver_in)
            for id, message in zip(ids, messages, strict=True)
        ]
        for row, hold in zip(rows, holds or (), strict=False):
            if hold is not None:
                row.update(status="held", hold_group=hold.group, next_attempt_at=hold.until)
        statement = _INSERT_NEW.get(connection.dialect.name, _INSERT)
        fresh = set(connection.execute(statement, parameters(rows)).scalars())
        new = [(row, m) for row, m in zip(rows, messages, strict=True) if row["id"] in fresh]
        if new:
            connection.execute(
                _INSERT_BODIES, parameters([{"id": row["id"], "message": m.data} for row, m in new])
            )
        earlier: dict[tuple[str, str], OutboxItem] = {}
        if len(new) < len(rows):
            earlier = _queued_before(connection, messages)
        items = [
            _new_item(row) if row["id"] in fresh else earlier[(m.event_id, m.recipient)]
            for row, m in zip(rows, messages, strict=True)
        ]
        if self._metrics is not None:
            for row, _ in new:
                self._metrics.mails_queued.labels(kind=row["kind"]).inc()
        return items

    # --- flood control (the deciding side's counts, the digests) -----------------------------

    def mailed_since(
        self, connection: Connection, recipients: Iterable[str], since: float
    ) -> dict[str, int]:
        """How many mails to each of `recipients` were queued as usual (not held, no digest)
        from `since` on, read inside the caller's transaction."""
        rows = connection.execute(
            select(table.c.recipient, func.count())
            .where(
                table.c.recipient.in_(set(recipients)),
                table.c.created_at >= since,
                table.c.hold_group.is_(None),
                table.c.kind.not_in(DIGEST_KINDS),
            )
            .group_by(table.c.recipient)
        )
        return {str(recipient): int(count) for recipient, count in rows}

    def extend_hold(self, connection: Connection, group: str, until: float) -> None:
        """Make the mails held for `group` (not yet in a digest) due at `until`."""
        connection.execute(
            update(table)
            .where(
                table.c.hold_group == group,
                table.c.status == "held",
                table.c.digest_id.is_(None),
            )
            .values(next_attempt_at=until)
        )

    def held_groups_due(self, now: float | None = None) -> list[tuple[str, str]]:
        """The (group, recipient) pairs whose digest is due: every mail of it held till now."""
        now = self._clock() if now is None else now
        with reading(self._engine) as connection:
            rows = connection.execute(
                select(table.c.hold_group, table.c.recipient)
                .where(table.c.status == "held", table.c.digest_id.is_(None))
                .group_by(table.c.hold_group, table.c.recipient)
                .having(func.max(table.c.next_attempt_at) <= now)
            )
            return [(str(group), str(recipient)) for group, recipient in rows]

    def held_mail(self, group: str, recipient: str) -> list[HeldMail]:
        """The mails held for `group` to `recipient` and not yet in a digest, oldest first."""
        with reading(self._engine) as connection:
            rows = list(
                connection.execute(
                    select(table.c.id, table.c.kind, table.c.created_at, table.c.subject)
                    .where(
                        table.c.hold_group == group,
                        table.c.recipient == recipient,
                        table.c.status == "held",
                        table.c.digest_id.is_(None),
                    )
                    .order_by(table.c.created_at, table.c.id)
                )
            )
            data = _bodies(connection, [row.id for row in rows])
        return [HeldMail(r.id, r.kind, r.created_at, r.subject, data[r.id]) for r in rows]

    def attach_digest(self, connection: Connection, digest_id: str, held: Iterable[str]) -> int:
        """Name `digest_id` as the digest of the `held` mails (still held, in no digest yet);
        how many they were."""
        result = connection.execute(
            update(table)
            .where(
                table.c.id.in_(list(held)),
                table.c.status == "held",
                table.c.digest_id.is_(None),
            )
            .values(digest_id=digest_id)
        )
        return int(result.rowcount)

    # --- the delivering side ----------------------------------------------------------------

    def claim(
        self, owner: str, limit: int, lease_seconds: float, now: float | None = None
    ) -> list[Claimed]:
        """Hand up to `limit` due messages to `owner` until its lease runs out: queued mail
        whose next attempt has come, and mail whose previous worker's lease ran out (it died
        while sending). One statement, so two workers never get the same row."""
        now = self._clock() if now is None else now
        due = (
            select(table.c.id)
            .where(_waiting(now))
            .order_by(table.c.next_attempt_at)
            .limit(limit)
            # PostgreSQL: rows another worker is claiming right now are passed over. SQLite
            # renders nothing here; its BEGIN IMMEDIATE already serialises claimers.
            .with_for_update(skip_locked=True)
        )
        statement = (
            update(table)
            .where(table.c.id.in_(due))
            .values(
                status="sending",
                lease_owner=owner,
                lease_until=now + lease_seconds,
                attempts=table.c.attempts + 1,
            )
            .returning(
                table.c.id,
                table.c.kind,
                table.c.sender,
                table.c.recipient,
                table.c.attempts,
                table.c.created_at,
                table.c.deliver_by,
                table.c.next_attempt_at,
            )
        )
        with self._engine.begin() as connection:
            rows = list(connection.execute(statement))
            data = _bodies(connection, [row.id for row in rows])
        rows.sort(key=lambda row: (row.next_attempt_at, row.created_at))
        return [
            Claimed(
                id=row.id,
                kind=row.kind,
                sender=row.sender,
                recipient=row.recipient,
                data=data[row.id],
                attempts=row.attempts,
                created_at=row.created_at,
                deliver_by=row.deliver_by,
            )
            for row in rows
        ]

    def renew(
        self, owner: str, ids: Iterable[str], lease_seconds: float, now: float | None = None
    ) -> int:
        """Extend `owner`'s lease on `ids` (a long batch); returns how many it still holds."""
        now = self._clock() if now is None else now
        return self._update_held(owner, ids, lease_until=now + lease_seconds)

    def release(self, owner: str, ids: Iterable[str]) -> int:
        """Give back mail `owner` claimed but did not try: queued again, due as it was, and the
        claim not counted as an attempt."""
        return self._update_held(
            owner,
            ids,
            status="queued",
            attempts=table.c.attempts - 1,
            lease_owner=None,
            lease_until=None,
        )

    def _update_held(self, owner: str, ids: Iterable[str], **values: Any) -> int:
        """Change the rows of `ids` that `owner` still holds under its lease; how many it was."""
        ids = list(ids)
        if not ids:
            return 0
        with self._engine.begin() as connection:
            result = connection.execute(
                update(table)
                .where(
                    table.c.id.in_(ids),
                    table.c.status == "sending",
                    table.c.lease_owner == owner,
                )
                .values(**values)
            )
        return int(result.rowcount)

    def record(
        self, outcomes: Sequence[Outcome], *, owner: str | None = None, now: float | None = None
    ) -> dict[str, str]:
        """Save the outcomes of several attempts in one transaction (`transitions.next_change`
        says what each makes of its mail); returns each changed id's new status."""
        now = self._clock() if now is None else now
        if not outcomes:
            return {}
        statuses: dict[str, str] = {}
        changes: list[tuple[Any, Change]] = []
        # Saved once per mail while sending (before the next mail's end of data): safe against
        # a crash of doormail, not waiting for the disk; a power loss sends the mail again.
        with crash_safe(self._engine) as connection, connection.begin():
            rows = {
                row.id: row
                for row in connection.execute(
                    select(*_RECORD_COLUMNS)
                    .where(table.c.id.in_({outcome.id for outcome in outcomes}))
                    .with_for_update()
                )
            }
            mails = {
                id: Attempted(row.status, row.attempts, row.deliver_by, row.lease_owner)
                for id, row in rows.items()
            }
            for outcome in outcomes:
                mail = mails.get(outcome.id)
                if mail is None:
                    continue
                change = next_change(outcome, mail, owner=owner, now=now, policy=self.policy)
                if change is not None:
                    changes.append((rows[outcome.id], change))
                    statuses[outcome.id] = change.status
                    # A later outcome of the same mail in this batch is judged on this one.
                    mails[outcome.id] = Attempted(
                        change.status, mail.attempts, mail.deliver_by, mail.lease_owner
                    )
            if changes:
                # One statement for the whole batch (executemany): a fast server must not
                # wait for the disk once per mail.
                connection.execute(_RECORD, [_parameters(row.id, c) for row, c in changes])
                _settle_digested(connection, changes)
        self._settled(changes, now)
        return statuses

    def recording(self, owner: str | None = None) -> Recording:
        """Where one round of delivery saves its outcomes as they come (close it at the end)."""
        return Recording(self, owner)

    def _settled(self, changes: Sequence[tuple[Any, Change]], now: float) -> None:
        """Count and log the changes a save made."""
        self._count_changes(changes, now)
        _log_changes(changes)

    def _count_changes(self, changes: Sequence[tuple[Any, Change]], now: float) -> None:
        metrics = self._metrics
        if metrics is None:
            return
        for row, change in changes:
            if change.status == "sent":
                metrics.mails_sent.labels(kind=row.kind).inc()
                metrics.delivery_seconds.observe(max(now - row.created_at, 0.0))
            else:
                self._count(change.status, row.kind)

    def _count(self, status: str, kind: str) -> None:
        if self._metrics is None:
            return
        if status == "failed":
            self._metrics.mails_failed.labels(kind=kind).inc()
        elif status == "expired":
            self._metrics.mails_expired.labels(kind=kind).inc()

    def expire_overdue(self, now: float | None = None) -> int:
        """Mark `expired` the mail still waiting past its deadline: queued and due, or claimed
        by a worker whose lease ran out. The worker calls this after a round of claims, so mail
        due on its deadline gets its last attempt first."""
        now = self._clock() if now is None else now
        with self._engine.begin() as connection:
            rows = connection.execute(
                update(table)
                .where(_waiting(now), table.c.deliver_by <= now)
                .values(
                    status="expired",
                    last_error=func.coalesce(
                        table.c.last_error, "the deadline (deliver_in) passed before an attempt"
                    ),
                    lease_owner=None,
                    lease_until=None,
                )
                .returning(table.c.kind, table.c.id, table.c.recipient, table.c.last_error)
            ).all()
        for row in rows:
            self._count("expired", row.kind)
            log.warning("mail %s to %s expired: %s", row.id, row.recipient, row.last_error)
        return len(rows)

    def next_due(self) -> float | None:
        """When the earliest queued mail is due (None when nothing is queued)."""
        with reading(self._engine) as connection:
            value = connection.execute(
                select(func.min(table.c.next_attempt_at)).where(table.c.status == "queued")
            ).scalar()
        return None if value is None else float(value)


class Recording:
    """The outcomes of one round of delivery, saved as they come. The worker waits for each
    before the next mail's end of data, so a mail the server took is saved by one statement
    on a connection the round keeps (`kept_crash_safe`: one round trip on PostgreSQL); any
    other outcome goes through `Queue.record`, as does a sent mail that statement leaves."""

    def __init__(self, queue: Queue, owner: str | None) -> None:
        self._queue = queue
        self._owner = owner
        self._connection: Connection | None = None

    def save(self, outcomes: Sequence[Outcome], now: float | None = None) -> dict[str, str]:
        """Save `outcomes` (`Queue.record`'s rules); returns each changed id's new status."""
        now = self._queue._clock() if now is None else now
        replies = {outcome.id: outcome.text for outcome in outcomes if outcome.result == "sent"}
        changes = [
            (row, Change("sent", sent_at=now, reply=replies[row.id]))
            for row in (self._save_sent(replies, now) if replies else [])
        ]
        statuses: dict[str, str] = {row.id: "sent" for row, _ in changes}
        self._queue._settled(changes, now)
        rest = [outcome for outcome in outcomes if outcome.id not in statuses]
        if rest:
            statuses |= self._queue.record(rest, owner=self._owner, now=now)
        return statuses

    def _save_sent(self, replies: dict[str, str], now: float) -> list[Any]:
        if self._connection is None:
            self._connection = kept_crash_safe(self._queue.engine)
        connection = self._connection
        try:
            with connection.begin():
                return [
                    row
                    for id, reply in replies.items()
                    for row in connection.execute(
                        _SENT, {"b_id": id, "b_sent_at": now, "b_reply": reply}
                    )
                ]
        except Exception:
            self.close()  # a connection the database dropped is not kept
            raise

    def close(self) -> None:
        """Give the kept connection back."""
        if self._connection is not None:
            connection, self._connection = self._connection, None
            give_back(connection)


def _settle_digested(connection: Connection, changes: Sequence[tuple[Any, Change]]) -> None:
    """The held mails of a digest that has ended end as it did (sent, failed or expired)."""
    ended = [
        (row.id, change)
        for row, change in changes
        if row.kind in DIGEST_KINDS and change.status in ("sent", "failed", "expired")
    ]
    for digest_id, change in ended:
        connection.execute(
            update(table)
            .where(table.c.digest_id == digest_id, table.c.status == "held")
            .values(
                status=change.status,
                sent_at=change.sent_at,
                smtp_reply=change.reply,
                last_error=change.error,
            )
        )


def _log_changes(changes: Sequence[tuple[Any, Change]]) -> None:
    """One line per mail sent, failed or expired (SPEC section 1); a mail queued again after a
    temporary failure is not a line of its own (the worker reports the failed session)."""
    for row, change in changes:
        if change.status == "sent":
            log.info("mail %s to %s sent: %s", row.id, row.recipient, change.reply)
        elif change.status in ("failed", "expired"):
            log.warning("mail %s to %s %s: %s", row.id, row.recipient, change.status, change.error)


def _row(id: str, message: OutgoingMessage, now: float, deliver_by: float) -> dict[str, Any]:
    return {
        "id": id,
        "event_id": message.event_id,
        "kind": message.kind,
        "recipient": message.recipient,
        "sender": message.sender,
        "subject": message.subject,
        "message_id": message.message_id,
        "status": "queued",
        "attempts": 0,
        "created_at": now,
        "deliver_by": deliver_by,
        "next_attempt_at": now,
        "hold_group": None,
    }


def _new_item(row: dict[str, Any]) -> OutboxItem:
    """The entry just inserted from `row`, without reading it back."""
    return OutboxItem(
        id=row["id"],
        event_id=row["event_id"],
        kind=row["kind"],
        to=row["recipient"],
        subject=row["subject"],
        status=row["status"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        deliver_by=row["deliver_by"],
        next_attempt_at=row["next_attempt_at"],
        sent_at=None,
        last_error=None,
        smtp_reply=None,
    )


def _queued_before(
    connection: Connection, messages: Sequence[OutgoingMessage]
) -> dict[tuple[str, str], OutboxItem]:
    """The entries already queued for these messages' (event id, recipient)."""
    events = {message.event_id for message in messages}
    rows = connection.execute(select(*ITEM_COLUMNS).where(table.c.event_id.in_(events)))
    return {(row.event_id, row.recipient): item_of(row) for row in rows}


def _bodies(connection: Connection, ids: list[str]) -> dict[str, bytes]:
    if not ids:
        return {}
    rows = connection.execute(select(bodies.c.id, bodies.c.message).where(bodies.c.id.in_(ids)))
    return {row.id: bytes(row.message) for row in rows}


def _parameters(id: str, change: Change) -> dict[str, Any]:
    return {
        "b_id": id,
        "b_status": change.status,
        "b_sent_at": change.sent_at,
        "b_reply": change.reply,
        "b_error": change.error,
        "b_next": change.next_attempt_at,
        "b_uncount": 1 if change.uncounted else 0,
    }
