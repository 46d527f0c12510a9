"""What people look at and do by hand in the outbox (the API, the web UI's Outbox tab and
`doormail outbox`): entries newest first with a cursor, one entry, its exact bytes, the counts by
state, and sending failed or expired mail again."""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, and_, func, or_, select, update

from doormail.outbox.items import ITEM_COLUMNS, OutboxError, OutboxItem, item_of
from doormail.outbox.transitions import RETRYABLE, STATUSES
from doormail.store import reading
from doormail.store.tables import outbox as table
from doormail.store.tables import outbox_messages as bodies

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class UnknownMessage(OutboxError, LookupError):
    """No outbox entry has this id."""


class NotRetryable(OutboxError):
    """Only failed or expired mail can be sent again by hand."""


class InvalidQuery(OutboxError, ValueError):
    """A status, limit or cursor that the outbox listing does not accept."""


@dataclass(frozen=True)
class Page:
    items: list[OutboxItem]
    next: str | None


class Admin:
    """The outbox as people see it."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._clock = clock

    def page(
        self, status: str | None = None, limit: int = DEFAULT_LIMIT, cursor: str | None = None
    ) -> Page:
        """Entries newest first, `limit` per page; `next` is the cursor of the following page
        (None on the last one)."""
        if status is not None and status not in STATUSES:
            raise InvalidQuery(f"status must be one of {', '.join(STATUSES)}", "status")
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidQuery(f"limit must be between 1 and {MAX_LIMIT}", "limit")
        query = select(*ITEM_COLUMNS)
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
            items = [item_of(row) for row in connection.execute(query)]
        more = len(items) > limit
        items = items[:limit]
        return Page(items, _encode_cursor(items[-1]) if more else None)

    def get(self, id: str) -> OutboxItem | None:
        with reading(self._engine) as connection:
            row = connection.execute(select(*ITEM_COLUMNS).where(table.c.id == id)).first()
        return None if row is None else item_of(row)

    def message(self, id: str) -> bytes:
        """The exact RFC 5322 bytes that are (or were) sent."""
        with reading(self._engine) as connection:
            data = connection.execute(select(bodies.c.message).where(bodies.c.id == id)).scalar()
        if data is None:
            raise UnknownMessage(f"no outbox entry {id!r}", "id")
        return bytes(data)

    def counts(self) -> dict[str, int]:
        """How many entries are in each state (every state present, zero included)."""
        with reading(self._engine) as connection:
            rows = connection.execute(
                select(table.c.status, func.count()).group_by(table.c.status)
            ).all()
        found = {str(status): int(count) for status, count in rows}
        return {status: found.get(status, 0) for status in STATUSES}

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
            updated = connection.execute(select(*ITEM_COLUMNS).where(table.c.id == id)).one()
        return item_of(updated)


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
