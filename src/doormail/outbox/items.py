"""One outbox entry as the API shows it (SPEC section 8), read from its row, and the outbox's
refusals, each naming the field it is about."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Row

from doormail.store.tables import outbox as table


class OutboxError(Exception):
    """A request the outbox cannot satisfy, naming the field it is about."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


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


ITEM_COLUMNS = (
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


def item_of(row: Row[*tuple[Any, ...]]) -> OutboxItem:
    """The entry a row of ITEM_COLUMNS holds."""
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
