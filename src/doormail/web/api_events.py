"""`POST /api/events` (SPEC section 4): one event or an array of them; the 202 reply comes once
every mail they cause is durably queued (an array in, an array out). `GET /api/events`: the
events kept, newest first, each with its mails or the reason there was none."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from doormail.eventlog import OUTCOMES, EventLogError, since_moment
from doormail.events import TYPES, EventError
from doormail.sources import posted_events
from doormail.web.bodies import json_body
from doormail.web.errors import ApiError
from doormail.web.schemas import body_of, json_reply, refusal
from doormail.web.security import for_events_tokens
from doormail.web.state import service_of

router = APIRouter(prefix="/api/events", tags=["events"])


@for_events_tokens
@router.post(
    "",
    status_code=202,
    response_model=None,
    openapi_extra=body_of("Events"),
    responses={
        202: json_reply("EventResults", "what each event came to, its mails durably queued"),
        422: refusal("an event names a bad value (`events[2].answered`)"),
    },
)
async def post_events(request: Request) -> JSONResponse:
    raw = await json_body(request)
    try:
        intake = service_of(request).intake
        replies = await posted_events.take(intake.submit, raw, intake.check_device)
    except EventError as problem:
        raise ApiError(422, "validation", problem.message, problem.field) from None
    return JSONResponse(replies, status_code=202)


@router.get(
    "",
    response_model=None,
    responses={
        200: json_reply("EventsPage", "the events kept, newest first, with what came of each"),
        422: refusal("a bad type, since, address, outcome, limit or cursor"),
    },
)
async def list_events(
    request: Request,
    type: Annotated[
        str | None, Query(max_length=64, json_schema_extra={"enum": list(TYPES)})
    ] = None,
    since: Annotated[
        str | None, Query(max_length=64, description="ISO 8601 with a UTC offset")
    ] = None,
    address: Annotated[
        str | None,
        Query(max_length=320, description="the events that mailed it, and those that did not"),
    ] = None,
    outcome: Annotated[
        str | None, Query(max_length=8, json_schema_extra={"enum": list(OUTCOMES)})
    ] = None,
    limit: Annotated[int, Query()] = 100,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
) -> dict[str, Any]:
    """`{"items": [{"event_id", "type", "at", "device", "fields", "emails", "reason"}],
    "next"}`; with `address`, each item also says `for_address`: mailed, or why not."""
    try:
        start = None if since is None else since_moment(since)
        page = await run_in_threadpool(
            service_of(request).events.page,
            type=type,
            since=start,
            address=address,
            outcome=outcome,
            limit=limit,
            cursor=cursor,
        )
    except EventLogError as problem:
        raise ApiError(422, "validation", problem.message, problem.field) from None
    return {"items": [event.public() for event in page.items], "next": page.next}
