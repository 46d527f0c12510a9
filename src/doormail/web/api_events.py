"""`POST /api/events` (SPEC section 4): one event or an array of them; the 202 reply comes once
every mail they cause is durably queued (an array in, an array out)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from doormail.events import EventError
from doormail.sources import posted_events
from doormail.web.errors import ApiError
from doormail.web.security import for_events_tokens
from doormail.web.state import service_of

router = APIRouter(prefix="/api/events", tags=["events"])


@for_events_tokens
@router.post("")
async def post_events(request: Request) -> JSONResponse:
    try:
        raw = await request.json()
    except ValueError:
        raise ApiError(400, "bad_request", "the request body is not valid JSON", "body") from None
    try:
        replies = await posted_events.take(service_of(request).intake.submit, raw)
    except EventError as error:
        raise ApiError(422, "validation", error.message, error.field) from None
    return JSONResponse(replies, status_code=202)
