"""The durable queue between deciding and delivering: finished messages (exact bytes, fixed
`Message-ID`) with their state, deadline, back-off and lease. It stores and hands out mail; it
never speaks SMTP."""

from __future__ import annotations

import base64
import binascii
import builtins
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import (
    Connection,
    Engine,
    Float,
    Row,
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

from doormail.delivery.retry import RetryPolicy
from doormail.mail import OutgoingMessage
from doormail.store import reading
from doormail.store.tables import outbox as table
from doormail.store.tables import outbox_messages as bodies

if TYPE_CHECKING:
    from doormail.metrics import Metrics

STATUSES = ("queued", "sending", "sent", "failed", "expired")
RETRYABLE = ("failed", "expired")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class OutboxError(Exception):
    """A request the outbox cannot satisfy, naming the field it is about."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class UnknownMessage(OutboxError, LookupError):
    """No outbox entry has this id."""


class NotRetryable(OutboxError):
    """Only failed or expired mail can be sent again by hand."""


class InvalidQuery(OutboxError, ValueError):
    """A status, limit or cursor that the outbox listing does not accept."""


@dataclass(frozen=True)
class OutboxItem:
    """One outbox entry as the API shows it (SPEC section 8); the message bytes are apart."""

    id: str
    event_id: str
    kind: str
    to: str
    subject: str
    status: str
    attempts: int
    created_at: float
    deliver_by: float
    next_attempt_at: float
    sent_at: float | None
    last_error: str | None
    smtp_reply: str | None

    def public(self) -> dict[str, Any]:
        return asdict(self)


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


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: `sent` (text is the server's reply), `temporary` (retry with
    back-off until the deadline) or `failed` (final); `reply` keeps the server's own words."""

    id: str
    result: Literal["sent", "temporary", "failed"]
    text: str
    reply: str | None = None


@dataclass(frozen=True)
class Page:
    items: list[OutboxItem]
    next: str | None


_ITEM_COLUMNS = (
    table.c.id,
    table.c.event_id,
    table.c.kind,
    table.c.recipient,
    table.c.subject,
    table.c.status,
    table.c.attempts,
    table.c.created_at,
    table.c.deliver_by,
    table.c.next_attempt_at,
    table.c.sent_at,
    table.c.last_error,
    table.c.smtp_reply,
)


_RECORD_COLUMNS = (
    table.c.id,
    table.c.kind,
    table.c.status,
    table.c.attempts,
    table.c.created_at,
    table.c.deliver_by,
    table.c.lease_owner,
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
        lease_owner=None,
        lease_until=None,
    )
)


def _item(row: Row[*tuple[Any, ...]]) -> OutboxItem:
    return OutboxItem(
        id=row.id,
        event_id=row.event_id,
        kind=row.kind,
        to=row.recipient,
        subject=row.subject,
        status=row.status,
        attempts=row.attempts,
        created_at=row.created_at,
        deliver_by=row.deliver_by,
        next_attempt_at=row.next_attempt_at,
        sent_at=row.sent_at,
        last_error=row.last_error,
        smtp_reply=row.smtp_reply,
    )


def _encode_cursor(item: OutboxItem) -> str:
    raw = f"{item.created_at!r}|{item.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, _, item_id = raw.partition("|")
        if not item_id:
            raise ValueError(cursor)
        return float(created), item_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidQuery("not a cursor from a previous page", "cursor") from None


class Outbox:
    """The outbox table: enqueue, claim under a lease, record outcomes, expire, retry, list."""

    def __init__(
        self,
        engine: Engine,
        *,
        policy: RetryPolicy | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
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
    ) -> list[OutboxItem]:
        """Queue `messages` inside the caller's transaction, so that they commit together with
        whatever caused them. A message whose (event id, recipient) is already queued is not
        queued twice; the existing entry is returned in its place."""
        if deliver_in <= 0:
            raise OutboxError("deliver_in must be a positive number of seconds", "deliver_in")
        if not messages:
            return []
        now = self._clock() if now is None else now
        rows = [self._row(message, now, now + deliver_in) for message in messages]
        connection.execute(self._insert_new(connection), rows)
        found = self._by_event_recipient(connection, messages)
        items = [found[(m.event_id, m.recipient)] for m in messages]
        fresh = {row["id"] for row in rows} & {item.id for item in items}
        connection.execute(
            insert(bodies),
            [
                {"id": item.id, "message": message.data}
                for item, message in zip(items, messages, strict=True)
                if item.id in fresh
            ],
        )
        if self._metrics is not None:
            for item in items:
                if item.id in fresh:
                    self._metrics.mails_queued.labels(kind=item.kind).inc()
        return items

    def enqueue_committed(
        self, messages: Sequence[OutgoingMessage], deliver_in: float, now: float | None = None
    ) -> list[OutboxItem]:
        """Queue `messages` in a transaction of their own, committed when this returns."""
        with self._engine.begin() as connection:
            return self.enqueue(connection, messages, deliver_in, now)

    @staticmethod
    def _row(message: OutgoingMessage, now: float, deliver_by: float) -> dict[str, Any]:
        return {
            "id": uuid.uuid4().hex,
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
        }

    @staticmethod
    def _insert_new(connection: Connection) -> Any:
        # The unique (event_id, recipient) index turns a second enqueue of the same mail into
        # a no-op instead of an error that would abort the caller's transaction.
        dialect = connection.dialect.name
        if dialect == "sqlite":
            return sqlite.insert(table).on_conflict_do_nothing()
        if dialect == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing()
        return insert(table)

    @staticmethod
    def _by_event_recipient(
        connection: Connection, messages: Sequence[OutgoingMessage]
    ) -> dict[tuple[str, str], OutboxItem]:
        events = {message.event_id for message in messages}
        rows = connection.execute(select(*_ITEM_COLUMNS).where(table.c.event_id.in_(events)))
        return {(row.event_id, row.recipient): _item(row) for row in rows}

    # --- the delivering side ----------------------------------------------------------------

    def claim(
        self, owner: str, limit: int, lease_seconds: float, now: float | None = None
    ) -> builtins.list[Claimed]:
        """Hand up to `limit` due messages to `owner` until its lease runs out: queued mail
        whose next attempt has come, and mail whose previous worker's lease ran out (it died
        while sending). One statement, so two workers never get the same row."""
        now = self._clock() if now is None else now
        due = (
            select(table.c.id)
            .where(
                or_(
                    and_(table.c.status == "queued", table.c.next_attempt_at <= now),
                    and_(table.c.status == "sending", table.c.lease_until <= now),
                )
            )
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
            rows = builtins.list(connection.execute(statement))
            data = self._bodies(connection, [row.id for row in rows])
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

    @staticmethod
    def _bodies(connection: Connection, ids: builtins.list[str]) -> dict[str, bytes]:
        if not ids:
            return {}
        rows = connection.execute(select(bodies.c.id, bodies.c.message).where(bodies.c.id.in_(ids)))
        return {row.id: bytes(row.message) for row in rows}

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
        ids = builtins.list(ids)
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
        """Save the outcomes of several attempts in one transaction; returns each id's new
        status. A temporary failure goes back to `queued` with back-off, or to `expired` when
        the deadline has passed. Failures only change mail still `sending` (under `owner`'s
        lease when given), so a late worker cannot undo another's work; a success is always
        kept, because the mail did go out."""
        now = self._clock() if now is None else now
        if not outcomes:
            return {}
        statuses: dict[str, str] = {}
        changes: builtins.list[dict[str, Any]] = []
        with self._engine.begin() as connection:
            rows = {
                row.id: row
                for row in connection.execute(
                    select(*_RECORD_COLUMNS)
                    .where(table.c.id.in_({outcome.id for outcome in outcomes}))
                    .with_for_update()
                )
            }
            current = {id: str(row.status) for id, row in rows.items()}
            for outcome in outcomes:
                row = rows.get(outcome.id)
                change = None if row is None else self._change(outcome, row, current, owner, now)
                if change is not None:
                    changes.append(change)
                    statuses[outcome.id] = current[outcome.id] = change["b_status"]
            if changes:
                # One statement for the whole batch (executemany): a fast server must not
                # wait for the disk once per mail.
                connection.execute(_RECORD, changes)
        self._count_changes(changes, rows, now)
        return statuses

    def _change(
        self,
        outcome: Outcome,
        row: Row[*tuple[Any, ...]],
        current: dict[str, str],
        owner: str | None,
        now: float,
    ) -> dict[str, Any] | None:
        status = current[outcome.id]
        change: dict[str, Any] = {
            "b_id": outcome.id,
            "b_sent_at": None,
            "b_reply": outcome.reply,
            "b_error": outcome.text,
            "b_next": None,
        }
        if outcome.result == "sent":
            if status == "sent":
                return None
            return change | {
                "b_status": "sent",
                "b_sent_at": now,
                "b_reply": outcome.text,
                "b_error": None,
            }
        if status != "sending" or (owner is not None and row.lease_owner != owner):
            return None
        retry_at = None
        if outcome.result == "temporary":
            retry_at = self.policy.next_attempt(row.attempts, now, row.deliver_by)
        if retry_at is not None:
            return change | {"b_status": "queued", "b_next": retry_at}
        return change | {"b_status": "failed" if outcome.result == "failed" else "expired"}

    def _count_changes(
        self, changes: Sequence[dict[str, Any]], rows: dict[str, Any], now: float
    ) -> None:
        metrics = self._metrics
        if metrics is None:
            return
        for change in changes:
            row, status = rows[change["b_id"]], change["b_status"]
            if status == "sent":
                metrics.mails_sent.labels(kind=row.kind).inc()
                metrics.delivery_seconds.observe(max(now - row.created_at, 0.0))
            else:
                self._count(status, row.kind)

    def _count(self, status: str, kind: str) -> None:
        if self._metrics is None:
            return
        if status == "failed":
            self._metrics.mails_failed.labels(kind=kind).inc()
        elif status == "expired":
            self._metrics.mails_expired.labels(kind=kind).inc()

    def mark_sent(self, id: str, reply: str, *, now: float | None = None) -> bool:
        """The server accepted the mail; `reply` is its final answer (`250 2.0.0 Ok ...`)."""
        return bool(self.record([Outcome(id, "sent", reply)], now=now))

    def mark_temporary(
        self,
        id: str,
        error: str,
        *,
        reply: str | None = None,
        owner: str | None = None,
        now: float | None = None,
    ) -> str | None:
        """A temporary failure: back to `queued` after the back-off, or `expired` past the
        deadline. Returns the new status (None when the mail was not being sent)."""
        outcome = Outcome(id, "temporary", error, reply)
        return self.record([outcome], owner=owner, now=now).get(id)

    def mark_failed(
        self,
        id: str,
        error: str,
        *,
        reply: str | None = None,
        owner: str | None = None,
        now: float | None = None,
    ) -> bool:
        """A permanent failure (a 5xx reply, or a setting that cannot work): no more retries."""
        return bool(self.record([Outcome(id, "failed", error, reply)], owner=owner, now=now))

    def expire_overdue(self, now: float | None = None) -> int:
        """Mark `expired` the mail still waiting past its deadline: queued and due, or claimed
        by a worker whose lease ran out. The worker calls this after a round of claims, so mail
        due on its deadline gets its last attempt first."""
        now = self._clock() if now is None else now
        waiting = or_(
            and_(table.c.status == "queued", table.c.next_attempt_at <= now),
            and_(table.c.status == "sending", table.c.lease_until <= now),
        )
        with self._engine.begin() as connection:
            rows = connection.execute(
                update(table)
                .where(waiting, table.c.deliver_by <= now)
                .values(
                    status="expired",
                    last_error=func.coalesce(
                        table.c.last_error, "the deadline (deliver_in) passed before an attempt"
                    ),
                    lease_owner=None,
                    lease_until=None,
                )
                .returning(table.c.kind)
            ).all()
        for row in rows:
            self._count("expired", row.kind)
        return len(rows)

    def next_due(self) -> float | None:
        """When the earliest queued mail is due (None when nothing is queued)."""
        with reading(self._engine) as connection:
            value = connection.execute(
                select(func.min(table.c.next_attempt_at)).where(table.c.status == "queued")
            ).scalar()
        return None if value is None else float(value)

    # --- looking and retrying by hand -------------------------------------------------------

    def get(self, id: str) -> OutboxItem | None:
        with reading(self._engine) as connection:
            row = connection.execute(select(*_ITEM_COLUMNS).where(table.c.id == id)).first()
        return None if row is None else _item(row)

    def message(self, id: str) -> bytes:
        """The exact RFC 5322 bytes that are (or were) sent."""
        with reading(self._engine) as connection:
            data = connection.execute(select(bodies.c.message).where(bodies.c.id == id)).scalar()
        if data is None:
            raise UnknownMessage(f"no outbox entry {id!r}", "id")
        return bytes(data)

    def retry(
        self, id: str, *, deliver_in: float | None = None, now: float | None = None
    ) -> OutboxItem:
        """Queue a failed or expired mail again, due now, with a new deadline `deliver_in`
        from now (by default as long as its first one)."""
        now = self._clock() if now is None else now
        with self._engine.begin() as connection:
            row = connection.execute(
                select(table.c.status, table.c.created_at, table.c.deliver_by).where(
                    table.c.id == id
                )
            ).first()
            if row is None:
                raise UnknownMessage(f"no outbox entry {id!r}", "id")
            if row.status not in RETRYABLE:
                raise NotRetryable(
                    f"only failed or expired mail can be retried; this one is {row.status}",
                    "status",
                )
            span = deliver_in if deliver_in is not None else row.deliver_by - row.created_at
            connection.execute(
                update(table)
                .where(table.c.id == id)
                .values(status="queued", attempts=0, next_attempt_at=now, deliver_by=now + span)
            )
            updated = connection.execute(select(*_ITEM_COLUMNS).where(table.c.id == id)).one()
        return _item(updated)

    def counts(self) -> dict[str, int]:
        """How many entries are in each state (every state present, zero included)."""
        with reading(self._engine) as connection:
            rows = connection.execute(
                select(table.c.status, func.count()).group_by(table.c.status)
            ).all()
        found = {str(status): int(count) for status, count in rows}
        return {status: found.get(status, 0) for status in STATUSES}

    def list(
        self, status: str | None = None, limit: int = DEFAULT_LIMIT, cursor: str | None = None
    ) -> Page:
        """Entries newest first, `limit` per page; `next` is the cursor of the following page
        (None on the last one)."""
        if status is not None and status not in STATUSES:
            raise InvalidQuery(f"status must be one of {', '.join(STATUSES)}", "status")
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidQuery(f"limit must be between 1 and {MAX_LIMIT}", "limit")
        query = select(*_ITEM_COLUMNS)
        if status is not None:
            query = query.where(table.c.status == status)
        if cursor is not None:
            created, after = _decode_cursor(cursor)
            query = query.where(
                or_(
                    table.c.created_at < created,
                    and_(table.c.created_at == created, table.c.id < after),
                )
            )
        query = query.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit + 1)
        with reading(self._engine) as connection:
            items = [_item(row) for row in connection.execute(query)]
        more = len(items) > limit
        items = items[:limit]
        return Page(items, _encode_cursor(items[-1]) if more else None)
