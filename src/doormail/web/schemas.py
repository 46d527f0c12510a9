"""The shapes of the native API's request and reply bodies as the OpenAPI document shows them,
named once here and referred to by the routes (`json_reply`, `body_of`). Shapes the code already
defines (the settings model, users, events, outbox entries, certificate slots, tokens) are
derived from it; the rest are written as Pydantic models. Nothing here validates a request."""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from doormail import settings as model
from doormail.accounts import TokenInfo
from doormail.applytest import LogLine
from doormail.camera.service import CameraStatus
from doormail.certificates import CertificateInfo
from doormail.devices.model import DeviceModel
from doormail.dkimkey import Check, DnsRecord
from doormail.events import MAX_EVENTS, Event
from doormail.outbox import OutboxItem
from doormail.outbox.server import ServerStatus
from doormail.users.model import User

REF = "#/components/schemas/{model}"
Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": REF.format(model=name)}


# -- replies written here ------------------------------------------------------------------------


class _Reply(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorItem(_Reply):
    field: str | None
    message: str
    line: int | None = Field(None, description="the line of a CSV import")
    column: str | None = Field(None, description="the column of a CSV import")


class ErrorDetail(_Reply):
    code: str = Field(description="validation, bad_request, not_found, unauthorized, ...")
    field: str | None = Field(description="the first bad field (dotted path), or null")
    message: str
    errors: list[ErrorItem] = Field(description="every bad field of the request")


class ErrorReply(_Reply):
    """Every refusal of the native API: never a stack trace."""

    error: ErrorDetail


class QueuedEmail(_Reply):
    id: str
    to: str
    status: str = Field(description="queued, or held by flood control")


class EventResult(_Reply):
    """What an event came to, once every mail it causes is durably queued."""

    event_id: str
    emails: list[QueuedEmail]
    reason: str | None = Field(description="why no mail was made, when none was")


class SendEmailResult(_Reply):
    event_id: str
    emails: list[QueuedEmail]


class IntercomError(_Reply):
    code: int = Field(description="4, 11, 12 or 13 of the intercom HTTP API's error table")
    param: str | None = None
    description: str


class IntercomReply(_Reply):
    """Always HTTP 200, as the intercom answers."""

    success: bool
    error: IntercomError | None = None


class UsersPage(_Reply):
    items: list[User]
    next: str | None = Field(description="the cursor of the next page, or null")
    total: int


class FieldWarning(_Reply):
    """A value that was accepted but may not do what is expected."""

    field: str
    message: str


class ConfigWarnings(_Reply):
    warnings: list[FieldWarning] = Field(description="each with the setting it is about")


class UserSaved(User):
    """The user as saved, and what in it deserves a second look (a number on two users)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    warnings: list[FieldWarning]


class UsersImported(_Reply):
    imported: int
    warnings: list[FieldWarning] = Field(description="numbers on more than one user")


class OutboxPage(_Reply):
    items: list[OutboxItem]
    next: str | None = Field(description="the cursor of the next page, or null")
    server: ServerStatus = Field(description="the SMTP server: up, or unreachable since when")


class OutboxRetried(_Reply):
    """Retry all now: every queued mail due at once, an unreachable server probed now."""

    queued: int = Field(description="how many queued mails are now due")


class KeptEmail(_Reply):
    id: str = Field(description="the outbox entry")
    to: str
    status: str = Field(description="its state in the outbox now")


class ForAddress(_Reply):
    address: str
    mailed: bool
    why: str | None = Field(description="why the event did not mail this address")


class KeptEvent(_Reply):
    """One event kept, with what came of it."""

    event_id: str
    type: str
    at: str = Field(description="when it happened, ISO 8601")
    device: str
    fields: dict[str, Any] = Field(description="the event's own fields as posted")
    emails: list[KeptEmail]
    reason: str | None = Field(description="why no mail was made, when none was")
    for_address: ForAddress | None = Field(
        None, description="with ?address=: whether this event mailed it, and why not"
    )


class EventsPage(_Reply):
    items: list[KeptEvent]
    next: str | None = Field(description="the cursor of the next page, or null")


class TestStarted(_Reply):
    __test__ = False
    id: str


class TestStatus(_Reply):
    __test__ = False
    id: str
    state: Literal["running", "sent", "failed"]
    log: list[LogLine]
    warnings: list[FieldWarning] = Field(
        description="settings that will keep event mail from going out (GET /api/config/warnings)"
    )


class CertificateList(_Reply):
    certificates: list[CertificateInfo]


class TokenList(_Reply):
    items: list[TokenInfo]


class Preview(_Reply):
    kind: str
    subject: str
    html: str = Field(description="the complete text/html part")
    text: str = Field(description="the text/plain part made from it")


class DkimKeyRequest(_Reply):
    algorithm: Literal["rsa", "ed25519"] = Field(description="rsa (2048 bits) or ed25519")


class DeviceSource(_Reply):
    kind: Literal["2n"]
    url: str
    username: str
    password_set: bool
    verify_certificate: bool


class DeviceReply(_Reply):
    """A device as `/api/devices` shows it (SPEC 11): secrets as `<name>_set`."""

    id: str
    name: str
    serial: str
    timezone: str = Field(description="empty: device.timezone")
    camera: dict[str, Any] = Field(description="the keys of camera.*, password as password_set")
    licenses: list[str]
    source: DeviceSource | None


class SourceError(_Reply):
    stage: str
    message: str
    hint: str


class SourceStatusReply(_Reply):
    """A device's event source, or the MQTT subscription."""

    source: Literal["2n", "mqtt"] | None
    state: Literal["connected", "connecting", "failing", "off"]
    since: str
    last_event_at: str | None
    events_received: int
    last_error: SourceError | None


class DeviceTestStage(_Reply):
    stage: str
    ok: bool
    message: str
    hint: str


class DeviceTestReply(_Reply):
    ok: bool
    stages: list[DeviceTestStage]


_REPLY_MODELS: tuple[type[BaseModel], ...] = (
    DeviceReply,
    SourceStatusReply,
    DeviceTestReply,
    ErrorReply,
    DkimKeyRequest,
    EventResult,
    SendEmailResult,
    IntercomReply,
    UsersPage,
    UsersImported,
    UserSaved,
    FieldWarning,
    ConfigWarnings,
    OutboxPage,
    OutboxRetried,
    EventsPage,
    TestStarted,
    TestStatus,
    CertificateList,
    TokenList,
    Preview,
)
# Shapes the code defines as dataclasses or models of its own.
_DERIVED: dict[str, Any] = {
    "User": User,
    "OutboxItem": OutboxItem,
    "ServerStatus": ServerStatus,
    "CertificateInfo": CertificateInfo,
    "CameraStatus": CameraStatus,
    "DkimRecord": DnsRecord,
    "DkimCheck": Check,
}


# -- the configuration document -----------------------------------------------------------------


def _inline(schema: Any, defs: dict[str, Schema]) -> Any:
    """`schema` with every local reference replaced by what it names (the settings model
    has no recursion), so that each view below can change its own copy."""
    if isinstance(schema, dict):
        target = schema.get("$ref")
        if isinstance(target, str):
            return _inline(defs[target.rsplit("/", 1)[-1]], defs)
        return {key: _inline(value, defs) for key, value in schema.items() if key != "$defs"}
    if isinstance(schema, list):
        return [_inline(item, defs) for item in schema]
    return schema


def _settings_schema(mode: Literal["validation", "serialization"]) -> Schema:
    raw = model.Settings.model_json_schema(mode=mode)
    inlined: Schema = _inline(raw, raw.get("$defs", {}))
    return inlined


def _section(document: Schema, path: tuple[str, ...]) -> Schema:
    node = document
    for key in path:
        node = node["properties"][key]
    return node


def config_document() -> Schema:
    """`GET /api/config`: the whole document, each secret shown as `<name>_set`."""
    document = _settings_schema("serialization")
    for path in model.SECRET_PATHS:
        parent = _section(document, path[:-1])
        name = path[-1]
        parent["properties"].pop(name)
        parent["properties"][f"{name}_set"] = {"type": "boolean", "readOnly": True}
        required = [key for key in parent.get("required", []) if key != name]
        parent["required"] = [*required, f"{name}_set"]
    document["title"] = "Configuration"
    return document


def config_change() -> Schema:
    """`PATCH` (the keys to change) and `PUT` (the whole document) of `/api/config`: every key
    may be left out; secrets are written here and never read back; the `<name>_set` flags of a
    GET may be sent back and are ignored."""
    document = _settings_schema("validation")
    _optional(document)
    for path in model.SECRET_PATHS:
        parent = _section(document, path[:-1])
        parent["properties"][path[-1]]["writeOnly"] = True
        parent["properties"][f"{path[-1]}_set"] = {"type": "boolean"}
    document["title"] = "ConfigurationChange"
    return document


def _optional(schema: Any) -> None:
    if isinstance(schema, dict):
        schema.pop("required", None)
        for value in schema.values():
            _optional(value)
    elif isinstance(schema, list):
        for item in schema:
            _optional(item)


# -- the registry the OpenAPI document is built from ---------------------------------------------


def _json_schema(shape: Any, mode: Literal["validation", "serialization"]) -> Schema:
    adapter: TypeAdapter[Any] = TypeAdapter(shape)
    return adapter.json_schema(mode=mode, ref_template=REF)


def _events_request() -> Schema:
    one = _json_schema(Event, "validation")
    defs = one.pop("$defs", {})
    many = {"type": "array", "items": copy.deepcopy(one), "minItems": 1, "maxItems": MAX_EVENTS}
    return {"oneOf": [one, many], "$defs": defs, "title": "Events"}


def _events_reply() -> Schema:
    return {"oneOf": [ref("EventResult"), {"type": "array", "items": ref("EventResult")}]}


def component_schemas() -> dict[str, Schema]:
    """Every named schema the routes refer to, with the models they use in turn."""
    found: dict[str, Schema] = {}
    shapes: list[tuple[str, Schema]] = [
        (m.__name__, _json_schema(m, "serialization")) for m in _REPLY_MODELS
    ]
    shapes += [(name, _json_schema(shape, "serialization")) for name, shape in _DERIVED.items()]
    shapes += [
        ("UserIn", _json_schema(User, "validation")),
        ("DeviceIn", _json_schema(DeviceModel, "validation")),
        ("Devices", {"type": "array", "items": ref("DeviceReply")}),
        ("Configuration", config_document()),
        ("ConfigurationChange", config_change()),
        ("Events", _events_request()),
        ("EventResults", _events_reply()),
    ]
    for name, schema in shapes:
        for inner, definition in schema.pop("$defs", {}).items():
            found.setdefault(inner, definition)
        found[name] = schema
    return found


# -- pieces of route declarations ----------------------------------------------------------------


def json_reply(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref(name)}}}


def text_reply(media_type: str, description: str, binary: bool = False) -> dict[str, Any]:
    schema: Schema = {"type": "string"}
    if binary:
        schema["format"] = "binary"
    return {"description": description, "content": {media_type: {"schema": schema}}}


def refusal(description: str) -> dict[str, Any]:
    return json_reply("ErrorReply", description)


def body_of(
    name: str | None = None, *, media: dict[str, Schema] | None = None, required: bool = True
) -> dict[str, Any]:
    """`openapi_extra` for a route that reads its own body: JSON of schema `name`, or the
    given media types."""
    content = media if media is not None else {"application/json": {"schema": ref(name or "")}}
    return {"requestBody": {"required": required, "content": content}}
