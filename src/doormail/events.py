"""The event shapes of SPEC section 4 (calls, accesses, device events) and their validation,
with errors that name the bad field (`answered`, or `events[2].answered` in an array). What an
event causes is decided in `rules`."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import UnionType
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

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
from pydantic.fields import FieldInfo

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
    # One event of the type, as `doormail event --help` and the README show it.
    example: ClassVar[dict[str, Any]] = {}

    id: Text | None = Field(
        None, description="idempotency key: an id seen before gets the earlier answer, no mail"
    )
    at: AwareDatetime = Field(default_factory=_now, description="when it happened (default now)")
    device: Text | None = Field(None, description="the device's name (default device.name)")


class CallRinging(_Event):
    """A call starts ringing (it is mailed when it ends)."""

    example: ClassVar[dict[str, Any]] = {"call_id": "7", "called": "101"}

    type: Literal["call.ringing"]
    call_id: Text = Field(description="the call's id at its device")
    direction: Literal["outgoing", "incoming"] = Field("outgoing", description="only outgoing")
    called: Called = Field((), description="numbers or user ids (repeat for several)")


class CallEnded(_Event):
    """A call ended, answered or not (E-Mail on Call)."""

    example: ClassVar[dict[str, Any]] = {"call_id": "7", "called": "101", "answered": False}

    type: Literal["call.ended"]
    call_id: Text | None = Field(None, description="the id its call.ringing had")
    direction: Literal["outgoing", "incoming"] = Field("outgoing", description="only outgoing")
    called: Annotated[Called, Field(min_length=1)] = Field(
        description="numbers or user ids (repeat for several)"
    )
    answered: StrictBool = Field(description="false makes a missed call")
    started_at: AwareDatetime | None = Field(None, description="when it started ringing")


class Access(_Event):
    """A card, Bluetooth or fingerprint at the reader (E-Mail on Access)."""

    example: ClassVar[dict[str, Any]] = {"auth_type": "card", "auth_id": "0012AB34CD"}

    type: Literal["access"]
    auth_type: Literal["card", "bluetooth", "fingerprint"] = Field(description="the identifier")
    auth_id: Text = Field(description="the identifier's id")
    valid: StrictBool | None = Field(
        None, description="default: valid when the id belongs to a user"
    )
    user: Text | None = Field(None, description="a user id (default: the id's user)")


class SipRegistrationLost(_Event):
    """The SIP registration was lost (E-Mail on Event)."""

    example: ClassVar[dict[str, Any]] = {"account": "1"}

    type: Literal["sip.registration_lost"]
    account: Text | None = Field(None, description="the SIP account")


class DeviceRebooted(_Event):
    """The device restarted (E-Mail on Event)."""

    type: Literal["device.rebooted"]


class TamperActivated(_Event):
    """The tamper switch fired (E-Mail on Event)."""

    type: Literal["tamper.activated"]


Event = Annotated[
    CallRinging | CallEnded | Access | SipRegistrationLost | DeviceRebooted | TamperActivated,
    Field(discriminator="type"),
]
DeviceEvent = SipRegistrationLost | DeviceRebooted | TamperActivated
_adapter: TypeAdapter[Event] = TypeAdapter(Event)
# Every event model, in the order of the union above (help texts and the README list them so).
MODELS: tuple[type[_Event], ...] = get_args(get_args(Event)[0])
TYPES: tuple[str, ...] = tuple(
    get_args(model.model_fields["type"].annotation)[0] for model in MODELS
)


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


@dataclass(frozen=True)
class FieldDoc:
    """One field of an event type, for the help and the README: its values and meaning."""

    name: str
    required: bool
    values: str
    what: str


@dataclass(frozen=True)
class TypeDoc:
    """An event type: what it is, its own fields and an example of its fields."""

    type: str
    what: str
    fields: tuple[FieldDoc, ...]
    example: dict[str, Any]


def documented(model: type[BaseModel], names: Iterable[str]) -> tuple[FieldDoc, ...]:
    """`names` of `model` as documented fields, read from the model itself."""
    fields = model.model_fields
    return tuple(
        FieldDoc(
            name, fields[name].is_required(), _values(fields[name]), fields[name].description or ""
        )
        for name in names
    )


def type_docs() -> tuple[TypeDoc, ...]:
    """Every event type with its own fields (the ones every type has are in COMMON_FIELDS)."""
    common = set(_Event.model_fields)
    return tuple(
        TypeDoc(
            type=TYPES[index],
            what=(model.__doc__ or "").strip(),
            fields=documented(model, [n for n in model.model_fields if n not in common | {"type"}]),
            example=model.example,
        )
        for index, model in enumerate(MODELS)
    )


def common_fields() -> tuple[FieldDoc, ...]:
    """The fields every event type has."""
    return documented(_Event, _Event.model_fields)


def _values(field: FieldInfo) -> str:
    annotation: Any = field.annotation
    while get_origin(annotation) in (Annotated, UnionType, Union):
        arguments = [arg for arg in get_args(annotation) if arg is not type(None)]
        annotation = arguments[0]
    if get_origin(annotation) is Literal:
        return " | ".join(str(value) for value in get_args(annotation))
    if annotation is bool:
        return "true | false"
    if annotation in (datetime, AwareDatetime):
        return "ISO 8601 time with offset"
    if get_origin(annotation) is tuple:
        return "text, repeatable"
    return "text"
