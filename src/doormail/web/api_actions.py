"""Sending e-mail on demand (SPEC section 7) in its two request forms: the native
`POST /api/actions/send-email` (JSON, errors in the native shape) and the intercom's
`GET|POST /api/email/send` (query, form or JSON; always HTTP 200 with `success`)."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from doormail.pipeline.commit import Accepted
from doormail.pipeline.intake import LICENSE_REASON
from doormail.rules import SMTP_DISABLED
from doormail.sources.send_email import (
    IntercomError,
    OrderError,
    SendEmailRequest,
    action_order,
    intercom_order,
)
from doormail.web.errors import ApiError
from doormail.web.schemas import body_of, json_reply, refusal
from doormail.web.security import for_events_tokens
from doormail.web.state import service_of

router = APIRouter(tags=["actions"])

SMTP_DISABLED_MESSAGE = "smtp.enabled is false: turn on SMTP Service Enabled to send e-mail"


@for_events_tokens
@router.post(
    "/api/actions/send-email",
    status_code=202,
    response_model=None,
    responses={
        202: json_reply("SendEmailResult", "the mails, durably queued"),
        404: refusal("no user has the id given in `user`"),
        409: refusal("smtp.enabled is false"),
        422: refusal("a bad value, naming the field"),
    },
)
async def send_email_action(request: Request, action: SendEmailRequest) -> dict[str, Any]:
    """The Automation action Send E-Mail. 202 `{"event_id", "emails": [{"id", "to",
    "status"}]}` once the mails are queued; 404 for an unknown `user`, 422 naming the field,
    409 `smtp_disabled` when `smtp.enabled` is false."""
    service = service_of(request)
    try:
        order = await run_in_threadpool(action_order, action, service.users.by_id)
    except OrderError as error:
        if error.unknown:
            raise ApiError(404, "not_found", error.message, error.field) from None
        raise ApiError(422, "validation", error.message, error.field) from None
    accepted = await service.intake.send_email(order)
    if accepted.reason == SMTP_DISABLED:
        raise ApiError(409, "smtp_disabled", SMTP_DISABLED_MESSAGE, "smtp.enabled")
    return _queued(accepted)


def _queued(accepted: Accepted) -> dict[str, Any]:
    reply = accepted.reply()
    return {"event_id": reply["event_id"], "emails": reply["emails"]}


# -- the intercom form -----------------------------------------------------------------------

_FORM_FIELDS = {
    "to": "addresses separated by commas (required)",
    "subject": "required",
    "body": "HTML",
    "pictureCount": "0..5",
    "timeSpan": "seconds",
    "width": "with height, one of the snapshot resolutions",
    "height": "with width",
}
_FORM_SCHEMA = {
    "type": "object",
    "properties": {name: {"type": "string", "description": d} for name, d in _FORM_FIELDS.items()},
}
_QUERY = {
    "parameters": [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
        for name in _FORM_FIELDS
    ]
}
_FORM = body_of(
    media={
        "application/json": {"schema": {"type": "object"}},
        "application/x-www-form-urlencoded": {"schema": _FORM_SCHEMA},
    },
    required=False,
)
_INTERCOM_REPLY: dict[int | str, dict[str, Any]] = {
    200: json_reply("IntercomReply", "always 200: success, or the intercom's error")
}


@for_events_tokens
async def intercom_send(request: Request) -> JSONResponse:
    """`/api/email/send` as the intercom has it: `to` and `subject` required, `body`,
    `pictureCount` 0..5 (default 0), `timeSpan` seconds (default 0), `width` and `height` one of
    the snapshot resolutions (default 640x480); as query parameters, form fields or a JSON
    object. Always HTTP 200: `{"success": true}`, or `{"success": false, "error": {"code",
    "param", "description"}}` with 11 (missing mandatory parameter), 12 (invalid parameter
    value) or 13 (parameter data too big: a subject or body longer than a subject or body
    template may be). When `smtp.enabled` is false the reply is code 4, "function is
    disabled", as the intercom answers for a service that is switched off; when licensing is
    enforced and `device.licenses` lacks the e-mail function, code 5 "function is licensed"."""
    try:
        _refuse_cross_site_get(request)
        order = intercom_order(await _intercom_params(request))
    except IntercomError as error:
        return JSONResponse(error.public())
    accepted = await service_of(request).intake.send_email(order)
    if accepted.reason == SMTP_DISABLED:
        return JSONResponse(IntercomError(4).public())
    if accepted.reason == LICENSE_REASON:
        return JSONResponse(IntercomError(5).public())
    return JSONResponse({"success": True})


# The same form by GET (query parameters) and by POST (a form or a JSON object as well).
router.add_api_route(
    "/api/email/send",
    intercom_send,
    methods=["GET"],
    response_model=None,
    operation_id="intercom_send_get",
    openapi_extra=_QUERY,
    responses=_INTERCOM_REPLY,
)
router.add_api_route(
    "/api/email/send",
    intercom_send,
    methods=["POST"],
    response_model=None,
    operation_id="intercom_send_post",
    openapi_extra={**_QUERY, **_FORM},
    responses=_INTERCOM_REPLY,
)


def _refuse_cross_site_get(request: Request) -> None:
    # A GET that sends mail with the session must carry the page's CSRF token like any other
    # change: SameSite=Strict keeps the cookie off links from other sites, and this check does
    # not depend on every browser honouring it.
    if request.method != "GET" or request.headers.get("authorization"):
        return
    session = request.scope.get("session") if "session" in request.scope else None
    expected = session.get("csrf") if isinstance(session, dict) else None
    presented = request.headers.get("x-csrf-token", "")
    if not isinstance(expected, str) or not hmac.compare_digest(
        expected.encode(), presented.encode()
    ):
        raise IntercomError(12, "X-CSRF-Token")


async def _intercom_params(request: Request) -> dict[str, object]:
    """Query parameters, overridden by form fields or the members of a JSON object."""
    params: dict[str, object] = dict(request.query_params)
    if request.method != "POST":
        return params
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            data = await request.json()
        except (ValueError, RecursionError):
            raise IntercomError(12, "json") from None
        if not isinstance(data, dict):
            raise IntercomError(12, "json")
        params.update(data)
    elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            form = await request.form()
        except HTTPException:  # a multipart body that cannot be read
            raise IntercomError(12, "form") from None
        for key, value in form.items():
            if not isinstance(value, str):
                raise IntercomError(12, key)
            params[key] = value
    return params
