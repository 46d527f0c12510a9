"""The event shapes of SPEC section 4 (calls, accesses, device events) and their validation,
with errors that name the bad field (`answered`, or `events[2].answered` in an array). What an
event causes is decided in `rules`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    TypeAdapter,
    ValidationError,
)

MAX_EVENTS = 1000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class EventError(ValueError):
    """An event that cannot be accepted; `field` is the path of the bad value."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _text(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    if len(value) > 256:
        raise ValueError("must be at most 256 characters")
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


Text = Annotated[str, AfterValidator(_text)]
Called = Annotated[tuple[Text, ...], BeforeValidator(_as_list)]


def _now() -> datetime:
    return datetime.now(UTC)


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Text | None = None  # idempotency key
    at: AwareDatetime = Field(default_factory=_now)
    device: Text | None = None  # None: device.name


class CallRinging(_Event):
    type: Literal["call.ringing"]
    call_id: Text
    direction: Literal["outgoing", "incoming"] = "outgoing"
    called: Called = ()


class CallEnded(_Event):
    type: Literal["call.ended"]
    call_id: Text | None = None
    direction: Literal["outgoing", "incoming"] = "outgoing"
    called: Annotated[Called, Field(min_length=1)]
    answered: StrictBool
    started_at: AwareDatetime | None = None


class Access(_Event):
    type: Literal["access"]
    auth_type: Literal["card", "bluetooth", "fingerprint"]
    auth_id: Text
    valid: StrictBool | None = None  # None: valid when the identifier belongs to a user
    user: Text | None = None  # None: the user the identifier belongs to


class SipRegistrationLost(_Event):
    type: Literal["sip.registration_lost"]
    account: Text | None = None


class DeviceRebooted(_Event):
    type: Literal["device.rebooted"]


class TamperActivated(_Event):
    type: Literal["tamper.activated"]


Event = Annotated[
    CallRinging | CallEnded | Access | SipRegistrationLost | DeviceRebooted | TamperActivated,
    Field(discriminator="type"),
]
DeviceEvent = SipRegistrationLost | DeviceRebooted | TamperActivated
TYPES = (
    "call.ringing",
    "call.ended",
    "access",
    "sip.registration_lost",
    "device.rebooted",
    "tamper.activated",
)
_adapter: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(raw: object, prefix: str = "") -> Event:
    """One event from decoded JSON, or EventError naming the first bad field."""
    try:
        return _adapter.validate_python(raw)
    except ValidationError as error:
        raise _event_error(error, prefix) from None


def parse_events(raw: object) -> tuple[list[Event], bool]:
    """The events of a request body (one object or an array), and whether it was an array."""
    if not isinstance(raw, list):
        return [parse_event(raw)], False
    if not raw:
        raise EventError("events", "must hold at least one event")
    if len(raw) > MAX_EVENTS:
        raise EventError("events", f"must hold at most {MAX_EVENTS} events per request")
    return [parse_event(item, f"events[{index}]") for index, item in enumerate(raw)], True


def _path(prefix: str, loc: tuple[int | str, ...]) -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else part
    return path or "event"


def _event_error(error: ValidationError, prefix: str) -> EventError:
    first = error.errors()[0]
    loc = tuple(first["loc"])
    if loc and loc[0] in TYPES:
        loc = loc[1:]  # the discriminator's tag, not a field
    kind = first["type"]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = first.get("ctx", {}).get("tag")
        what = "is required" if tag is None else f"{tag!r} is not an event type"
        return EventError(_path(prefix, ("type",)), f"{what}; one of {', '.join(TYPES)}")
    return EventError(_path(prefix, loc), _message(kind, first["msg"], first.get("ctx", {})))


def _message(kind: str, message: str, context: dict[str, Any]) -> str:
    messages = {
        "missing": "is required",
        "extra_forbidden": "is not a field of this event type",
        "bool_type": "must be true or false",
        "string_type": "must be a string",
        "tuple_type": "must be a string or a list of strings",
        "model_attributes_type": "must be a JSON object",
        "model_type": "must be a JSON object",
        "timezone_aware": "must be ISO 8601 with a UTC offset, e.g. 2025-05-01T12:00:00+02:00",
        "too_short": "must not be empty",
    }
    if kind in messages:
        return messages[kind]
    if kind.startswith("datetime"):
        return f"must be ISO 8601 with a UTC offset ({message.removeprefix('Input should be ')})"
    if kind == "literal_error":
        return "must be " + str(context.get("expected", message))
    return message.removeprefix("Value error, ")
