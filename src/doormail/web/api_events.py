"""`POST /api/events` (SPEC section 4): one event or an array of them; the 202 reply comes once
every mail they cause is durably queued (an array in, an array out)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from doormail.events import EventError
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
