"""The events kept and what came of each (SPEC section 4): `GET /api/events`, the web UI's
Events tab and `doormail events` read them here, newest first with a cursor, by type, time,
outcome (mail or none) and address; each with its mails as the outbox has them now, or the
reason there was none. For an address, each event also says whether it mailed that address,
and why not. The events are written by the pipeline's commit; pruning them is the storage
settings' business."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Engine, and_, or_, select

from doormail.events import TYPES
from doormail.store import reading
from doormail.store.tables import events as table
from doormail.store.tables import outbox

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
OUTCOMES = ("mail", "none")
Outcome = Literal["mail", "none"]
_COLUMNS = (
    table.c.id,
    table.c.type,
    table.c.at,
    table.c.received_at,
    table.c.device,
    table.c.fields,
    table.c.result,
)


class EventLogError(ValueError):
    """A filter, limit or cursor the events list does not accept; `field` names it."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class KeptMail:
    """One mail of an event, with its state in the outbox now."""

    id: str
    to: str
    status: str


@dataclass(frozen=True)
class ForAddress:
    """What an event came to for one address: mailed, or not and why."""

    address: str
    mailed: bool
    why: str | None


@dataclass(frozen=True)
class KeptEvent:
    """One event kept: what, when, where, its fields, its mails or the reason there are none."""

    event_id: str
    type: str
    at: float
    device: str
    fields: dict[str, Any]
    emails: tuple[KeptMail, ...]
    reason: str | None
    for_address: ForAddress | None = None

    def public(self) -> dict[str, Any]:
        """`{"event_id", "type", "at", "device", "fields", "emails", "reason"}` (and
        `for_address` when the list was asked for an address)."""
        shown: dict[str, Any] = {
            "event_id": self.event_id,
            "type": self.type,
            "at": datetime.fromtimestamp(self.at, UTC).isoformat(),
            "device": self.device,
            "fields": self.fields,
            "emails": [{"id": m.id, "to": m.to, "status": m.status} for m in self.emails],
            "reason": self.reason,
        }
        if self.for_address is not None:
            found = self.for_address
            shown["for_address"] = {
                "address": found.address,
                "mailed": found.mailed,
                "why": found.why,
            }
        return shown


@dataclass(frozen=True)
class Page:
    items: list[KeptEvent]
    next: str | None


class EventLog:
    """The events table as people read it."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def page(
        self,
        *,
        type: str | None = None,
        since: float | None = None,
        address: str | None = None,
        outcome: str | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page:
        """Events newest first, `limit` per page; `next` is the cursor of the following page
        (None on the last one)."""
        query = select(*_COLUMNS).where(*_filters(type, since, address, outcome))
        if not 1 <= limit <= MAX_LIMIT:
            raise EventLogError(f"limit must be between 1 and {MAX_LIMIT}", "limit")
        if cursor is not None:
            at, after = _decode_cursor(cursor)
            query = query.where(or_(table.c.at < at, and_(table.c.at == at, table.c.id < after)))
        query = query.order_by(table.c.at.desc(), table.c.id.desc()).limit(limit + 1)
        with reading(self._engine) as connection:
            rows = connection.execute(query).all()
            more = len(rows) > limit
            rows = rows[:limit]
            answers = [json.loads(row.result) for row in rows]
            ids = [mail["id"] for answer in answers for mail in answer["emails"]]
            states = _states(connection, ids)
        items = [
            _kept(row, answer, states, address) for row, answer in zip(rows, answers, strict=True)
        ]
        last = items[-1] if items else None
        return Page(items, _encode_cursor(last) if more and last else None)


def since_moment(since: str) -> float:
    """A `since` given as text (ISO 8601, which must name its offset from UTC) as UNIX
    seconds."""
    try:
        moment = datetime.fromisoformat(since)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        message = "must be ISO 8601 with a UTC offset, e.g. 2026-11-29T08:00:00+01:00"
        raise EventLogError(message, "since")
    return moment.timestamp()


def _filters(
    type: str | None, since: float | None, address: str | None, outcome: str | None
) -> list[Any]:
    found: list[Any] = []
    if type is not None:
        if type not in TYPES:
            raise EventLogError(f"type must be one of {', '.join(TYPES)}", "type")
        found.append(table.c.type == type)
    if since is not None:
        found.append(table.c.at >= since)
    if outcome is not None:
        if outcome not in OUTCOMES:
            raise EventLogError("outcome must be mail or none", "outcome")
        found.append(table.c.mails > 0 if outcome == "mail" else table.c.mails == 0)
    if address is not None:
        wanted = address.strip().lower()
        if not wanted or "," in wanted or len(wanted) > 320:
            raise EventLogError("address must be one e-mail address", "address")
        found.append(table.c.addresses.contains(f",{wanted},", autoescape=True))
    return found


def _states(connection: Any, ids: Sequence[str]) -> dict[str, str]:
    """The outbox state of each of these mails (a mail no longer kept is left out)."""
    if not ids:
        return {}
    rows = connection.execute(select(outbox.c.id, outbox.c.status).where(outbox.c.id.in_(ids)))
    return {str(row.id): str(row.status) for row in rows}


def _kept(
    row: Any, answer: dict[str, Any], states: dict[str, str], address: str | None
) -> KeptEvent:
    emails = tuple(
        KeptMail(mail["id"], mail["to"], states.get(mail["id"], mail["status"]))
        for mail in answer["emails"]
    )
    reason = answer["reason"]
    return KeptEvent(
        event_id=row.id,
        type=row.type,
        at=float(row.at if row.at is not None else row.received_at),
        device=row.device or "",
        fields=json.loads(row.fields) if row.fields else {},
        emails=emails,
        reason=reason,
        for_address=None if address is None else _for_address(address, emails, reason),
    )


def _for_address(address: str, emails: Sequence[KeptMail], reason: str | None) -> ForAddress:
    wanted = address.strip().lower()
    if any(mail.to.lower() == wanted for mail in emails):
        return ForAddress(address.strip(), True, None)
    if reason is None:
        others = ", ".join(mail.to for mail in emails)
        reason = f"the mail went to {others} instead" if others else None
    return ForAddress(address.strip(), False, reason)


def _encode_cursor(event: KeptEvent) -> str:
    raw = f"{event.at!r}|{event.event_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, event_id = raw.partition("|")
        if not event_id:
            raise ValueError(cursor)
        return float(at), event_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise EventLogError("not a cursor from a previous page", "cursor") from None
