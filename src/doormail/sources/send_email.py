"""The two forms of Send E-Mail (SPEC section 7), each parsed into the one order the rules know
(`rules.SendEmail`): the Automation action's JSON (`POST /api/actions/send-email`, errors naming
the field) and the intercom HTTP API's `/api/email/send` (query, form or JSON parameters, errors
as the intercom's codes). Reading the request itself is the web's job."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from doormail.rules import SendEmail
from doormail.settings import MAX_BODY, MAX_SUBJECT, RESOLUTIONS, is_address, split_addresses
from doormail.users.model import User

MAX_ADDRESSES = 2_000  # characters of the intercom form's `to`
MAX_TIME_SPAN = 3600.0


def addresses(value: object) -> list[str]:
    """An address, addresses separated by commas, or a list of them; ValueError says which
    one is not an address."""
    if isinstance(value, str):
        value = split_addresses(value)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("must be an address, addresses separated by commas, or a list of them")
    found = [item.strip() for item in value if item.strip()]
    for address in found:
        if not is_address(address):
            raise ValueError(f"{address!r} is not an e-mail address")
        if not address.rpartition("@")[0].isascii():
            # A non-ASCII local part needs SMTPUTF8 all the way; a domain is sent as IDNA.
            raise ValueError(f"{address!r}: the part before @ must be ASCII")
    return found


# -- the Automation action -------------------------------------------------------------------

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
        return addresses(value)

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str | None) -> str | None:
        if value is not None and not is_address(value.strip()):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value.strip() if value is not None else None


class OrderError(ValueError):
    """An order that cannot be placed, naming the field; `unknown` when it names a user the
    list does not hold."""

    def __init__(self, field: str, message: str, *, unknown: bool = False) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.unknown = unknown


def action_order(request: SendEmailRequest, find_user: Callable[[str], User | None]) -> SendEmail:
    """The order of the Automation action: its addresses and, for a `user`, that user's (whose
    name then fills `$User$`)."""
    recipients = list(request.to)
    user: User | None = None
    if request.user is not None:
        user = find_user(request.user)
        if user is None:
            raise OrderError("user", f"no user has the id {request.user!r}", unknown=True)
        if not user.addresses:
            raise OrderError("user", f"user {request.user!r} has no e-mail address")
        recipients += user.addresses
    if not recipients:
        raise OrderError("to", "give the addresses in to, or a user id in user")
    return SendEmail(
        recipients=tuple(recipients),
        subject=request.subject,
        body=request.body,
        sender=request.sender,
        snapshots=request.snapshots,
        time_span=request.time_span,
        width=request.width,
        height=request.height,
        user=user,
    )


# -- the intercom form -----------------------------------------------------------------------


# The intercom HTTP API's error codes that this form can answer with.
DESCRIPTIONS = {
    4: "function is disabled",
    5: "function is licensed",
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

    def public(self) -> dict[str, Any]:
        """`{"success": false, "error": {"code", "param", "description"}}`."""
        error: dict[str, Any] = {"code": self.code}
        if self.param is not None:
            error["param"] = self.param
        error["description"] = DESCRIPTIONS[self.code]
        return {"success": False, "error": error}


def intercom_order(params: Mapping[str, object]) -> SendEmail:
    """The order of `/api/email/send` as the intercom has it: `to` and `subject` required,
    `body`, `pictureCount` 0..5 (default 0), `timeSpan` seconds (default 0), `width` and
    `height` one of the snapshot resolutions (default 640x480). IntercomError 11 (missing
    mandatory parameter), 12 (invalid parameter value) or 13 (parameter data too big: a subject
    or body longer than a subject or body template may be)."""
    to = _text(params, "to", required=True, limit=MAX_ADDRESSES)
    try:
        recipients = addresses(to)
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
