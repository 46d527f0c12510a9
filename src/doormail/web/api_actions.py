"""Sending e-mail on demand (SPEC section 7) in its two request forms: the native
`POST /api/actions/send-email` (JSON, errors in the native shape) and the intercom's
`GET|POST /api/email/send` (query, form or JSON; always HTTP 200 with `success`)."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from doormail.actions import Queued, SendEmail, SmtpDisabled, send_email
from doormail.settings import MAX_BODY, MAX_SUBJECT, RESOLUTIONS, is_address, split_addresses
from doormail.web.errors import ApiError
from doormail.web.schemas import body_of, json_reply, refusal
from doormail.web.security import for_events_tokens
from doormail.web.state import service_of

router = APIRouter(tags=["actions"])

MAX_ADDRESSES = 2_000  # characters of the intercom form's `to`
MAX_TIME_SPAN = 3600.0


def _addresses(value: object) -> list[str]:
    if isinstance(value, str):
        value = split_addresses(value)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("must be an address, addresses separated by commas, or a list of them")
    addresses = [item.strip() for item in value if item.strip()]
    for address in addresses:
        if not is_address(address):
            raise ValueError(f"{address!r} is not an e-mail address")
        if not address.rpartition("@")[0].isascii():
            # A non-ASCII local part needs SMTPUTF8 all the way; a domain is sent as IDNA.
            raise ValueError(f"{address!r}: the part before @ must be ASCII")
    return addresses


_ADDRESSES_SCHEMA = {
    "anyOf": [
        {"type": "string", "format": "email"},
        {"type": "array", "items": {"type": "string", "format": "email"}},
    ],
    "description": "addresses separated by commas, or a list of them",
}


class SendEmailRequest(BaseModel):
    """The body of `POST /api/actions/send-email`."""

    model_config = ConfigDict(extra="forbid")

    to: Annotated[list[str], WithJsonSchema(_ADDRESSES_SCHEMA)] = Field(default_factory=list)
    user: str | None = Field(None, min_length=1, max_length=128)
    sender: str | None = None
    subject: str | None = Field(None, max_length=MAX_SUBJECT)
    body: str | None = Field(None, max_length=MAX_BODY)
    snapshots: int = Field(1, ge=0, le=5, strict=True)
    time_span: float = Field(1.0, ge=0, le=MAX_TIME_SPAN)
    width: int = Field(640, ge=16, le=1920, strict=True)
    height: int = Field(480, ge=16, le=1080, strict=True)

    @field_validator("to", mode="before")
    @classmethod
    def _to(cls, value: object) -> list[str]:
        return _addresses(value)

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str | None) -> str | None:
        if value is not None and not is_address(value.strip()):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value.strip() if value is not None else None


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
async def send_email_action(request: Request, order: SendEmailRequest) -> dict[str, Any]:
    """The Automation action Send E-Mail. 202 `{"event_id", "emails": [{"id", "to",
    "status"}]}` once the mails are queued; 404 for an unknown `user`, 422 naming the field,
    409 `smtp_disabled` when `smtp.enabled` is false."""
    service = service_of(request)
    recipients = list(order.to)
    user_name: str | None = None
    if order.user is not None:
        user = await run_in_threadpool(service.directory.by_id, order.user)
        if user is None:
            raise ApiError(404, "not_found", f"no user has the id {order.user!r}", "user")
        if not user.addresses:
            raise ApiError(422, "validation", f"user {order.user!r} has no e-mail address", "user")
        recipients += user.addresses
        user_name = user.name
    if not recipients:
        raise ApiError(422, "validation", "give the addresses in to, or a user id in user", "to")
    try:
        queued = await send_email(
            service,
            SendEmail(
                recipients=tuple(recipients),
                subject=order.subject,
                body=order.body,
                sender=order.sender,
                snapshots=order.snapshots,
                time_span=order.time_span,
                width=order.width,
                height=order.height,
                user_name=user_name,
            ),
        )
    except SmtpDisabled as error:
        raise ApiError(409, "smtp_disabled", error.message, error.field) from None
    return _queued(queued)


def _queued(queued: Queued) -> dict[str, Any]:
    return {
        "event_id": queued.event_id,
        "emails": [{"id": i.id, "to": i.to, "status": i.status} for i in queued.items],
    }


# -- the intercom form -----------------------------------------------------------------------


# The intercom HTTP API's error codes that this form can answer with.
DESCRIPTIONS = {
    4: "function is disabled",
    11: "missing mandatory parameter",
    12: "invalid parameter value",
    13: "parameter data too big",
}


class IntercomError(Exception):
    """A reply of the intercom's HTTP API error table (code, param, description)."""

    def __init__(self, code: int, param: str | None = None) -> None:
        super().__init__(DESCRIPTIONS[code])
        self.code = code
        self.param = param

    def reply(self) -> JSONResponse:
        error: dict[str, Any] = {"code": self.code}
        if self.param is not None:
            error["param"] = self.param
        error["description"] = DESCRIPTIONS[self.code]
        return JSONResponse({"success": False, "error": error})


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
    disabled", as the intercom answers for a service that is switched off."""
    try:
        _refuse_cross_site_get(request)
        order = _intercom_order(await _intercom_params(request))
        await send_email(service_of(request), order)
    except IntercomError as error:
        return error.reply()
    except SmtpDisabled:
        return IntercomError(4).reply()
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


def _intercom_order(params: Mapping[str, object]) -> SendEmail:
    to = _text(params, "to", required=True, limit=MAX_ADDRESSES)
    try:
        recipients = _addresses(to)
    except ValueError:
        raise IntercomError(12, "to") from None
    if not recipients:
        raise IntercomError(11, "to")
    subject = _text(params, "subject", required=True, limit=MAX_SUBJECT)
    body = _text(params, "body", required=False, limit=MAX_BODY)
    width, height = _resolution(params)
    return SendEmail(
        recipients=tuple(recipients),
        subject=subject,
        body=body,
        snapshots=int(_number(params, "pictureCount", 0, 5, whole=True)),
        time_span=_number(params, "timeSpan", 0, MAX_TIME_SPAN, whole=False),
        width=width,
        height=height,
    )


def _text(params: Mapping[str, object], name: str, *, required: bool, limit: int) -> str:
    value = params.get(name)
    if value is None or (required and value == ""):
        if required:
            raise IntercomError(11, name)
        return ""
    if not isinstance(value, str):
        raise IntercomError(12, name)
    if len(value) > limit:
        raise IntercomError(13, name)
    return value


def _number(
    params: Mapping[str, object], name: str, low: float, high: float, *, whole: bool
) -> float:
    value = params.get(name)
    if value is None or value == "":
        return 0
    number: float
    if isinstance(value, bool):
        raise IntercomError(12, name)
    if isinstance(value, int | float):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value) if whole else float(value)
        except ValueError:
            raise IntercomError(12, name) from None
    else:
        raise IntercomError(12, name)
    if (whole and number != int(number)) or not low <= number <= high:
        raise IntercomError(12, name)
    return number


def _resolution(params: Mapping[str, object]) -> tuple[int, int]:
    width, height = params.get("width"), params.get("height")
    if width in (None, "") and height in (None, ""):
        return 640, 480
    if width in (None, ""):
        raise IntercomError(11, "width")
    if height in (None, ""):
        raise IntercomError(11, "height")
    if f"{width}x{height}" not in RESOLUTIONS or isinstance(width, bool):
        wrong = "width" if not any(r.startswith(f"{width}x") for r in RESOLUTIONS) else "height"
        raise IntercomError(12, wrong)
    return int(str(width)), int(str(height))
