"""The Events tab of the web UI: every event kept, newest first, with what came of it (its mails,
linked to the outbox, or the reason there was none), filtered by type and by "no mail", and a
search by address that answers "which events mailed this address, which did not, and why".
The page updates itself as events arrive (doormail.js). The list itself is `eventlog`'s."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from doormail.eventlog import EventLogError, KeptEvent, Page
from doormail.events import TYPES
from doormail.web.state import service_of
from doormail.web.ui_common import page, require_user

router = APIRouter()

PAGE_SIZE = 50


def when(at: float) -> str:
    """An event's time for people: UTC, to the second."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fields_of(event: KeptEvent) -> str:
    """The event's own fields in one line, as posted (`called: 101; answered: false`)."""
    shown = []
    for name, value in event.fields.items():
        if isinstance(value, list):
            value = ", ".join(str(item) for item in value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        shown.append(f"{name}: {value}")
    return "; ".join(shown)


@router.get("/events")
async def events_page(
    request: Request,
    type: str = "",
    outcome: str = "",
    address: str = "",
    cursor: str | None = None,
) -> Response:
    require_user(request)
    chosen = {
        "type": type if type in TYPES else None,
        "outcome": "none" if outcome == "none" else None,
        "address": address.strip() or None,
    }
    events = service_of(request).events

    def listed(cursor: str | None) -> Page:
        return events.page(
            type=chosen["type"],
            outcome=chosen["outcome"],
            address=chosen["address"],
            limit=PAGE_SIZE,
            cursor=cursor,
        )

    problem = None
    try:
        found = await run_in_threadpool(listed, cursor)
    except EventLogError as error:  # a bad address or an old cursor: say so, show the rest
        problem = f"{error.field}: {error.message}"
        chosen["address"] = None
        found = await run_in_threadpool(listed, None)
    query = {name: value for name, value in chosen.items() if value}
    more = None
    if found.next is not None:
        more = "/events?" + urlencode({**query, "cursor": found.next})
    context: dict[str, Any] = {
        "title": "Events",
        "types": TYPES,
        "type": chosen["type"] or "",
        "no_mail": chosen["outcome"] == "none",
        "address": address.strip(),
        "problem": problem,
        "items": found.items,
        "more": more,
        "first": cursor is None,
        "api_query": urlencode(query),
        "when": when,
        "fields_of": fields_of,
    }
    return page(request, "events.html", context)
