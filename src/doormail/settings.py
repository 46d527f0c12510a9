"""The configuration model: every parameter of the manual's E-Mail section, its default and its
validation (SPEC section 2). The API, the web UI, the CLI and import/export are views of it; it
does not know where it is stored."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from doormail import destinations

RESOLUTIONS = (
    "160x120",
    "176x144",
    "320x240",
    "352x272",
    "352x288",
    "640x480",
    "1280x720",
    "1280x960",
    "1920x1080",
)
Resolution = Literal[
    "160x120",
    "176x144",
    "320x240",
    "352x272",
    "352x288",
    "640x480",
    "1280x720",
    "1280x960",
    "1920x1080",
]

# The dotted paths of every write-only value. GET shows `<name>_set` instead of the value.
SECRET_PATHS = (
    ("smtp", "password"),
    ("smtp", "oauth2", "client_secret"),
    ("smtp", "oauth2", "refresh_token"),
    ("smtp", "dkim", "private_key"),
    ("camera", "password"),
    ("sources", "mqtt", "password"),
)

_ADDRESS = re.compile(r"^[^@\s,;<>()\[\]\\\"]+@[^@\s,;<>()\[\]\\\"]+$")
_HOST = re.compile(
    r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.\-]*[A-Za-z0-9])?|[0-9A-Fa-f:.]+)$"
)


class SettingsError(ValueError):
    """A configuration value that cannot be accepted; `field` is its dotted path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def split_addresses(value: str) -> list[str]:
    """The addresses of a comma-separated list such as Default To, blanks dropped."""
    return [part.strip() for part in value.split(",") if part.strip()]


def is_address(value: str) -> bool:
    """Whether `value` is one plain e-mail address (local@domain), without a display name.
    ASCII only: the messages are sent without SMTPUTF8, which not every server offers."""
    return value.isascii() and bool(_ADDRESS.match(value))


def _address_list(value: str) -> str:
    for address in split_addresses(value):
        if not is_address(address):
            raise ValueError(f"{address!r} is not an e-mail address")
    return ", ".join(split_addresses(value))


def _optional_address(value: str) -> str:
    value = value.strip()
    if value and not is_address(value):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


def _single_line(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError("must be a single line")
    return value


# The longest subject and body templates, in characters: each renders and previews in a few
# milliseconds, and an event's mails are never held up by them.
MAX_SUBJECT = 1024
MAX_BODY = 64 * 1024
# The validation context of a document read back from storage (see `validate`).
_STORED = "stored"


def _at_most(limit: int) -> AfterValidator:
    def check(value: str, info: ValidationInfo) -> str:
        # A template saved before the limit existed keeps working; a change must keep to it.
        if len(value) > limit and not (info.context or {}).get(_STORED):
            raise ValueError(f"must be at most {limit} characters (it has {len(value)})")
        return value

    return AfterValidator(check)


AddressList = Annotated[str, AfterValidator(_address_list)]
OptionalAddress = Annotated[str, AfterValidator(_optional_address)]
SingleLine = Annotated[str, AfterValidator(_single_line)]
SubjectTemplate = Annotated[str, _at_most(MAX_SUBJECT), AfterValidator(_single_line)]
BodyTemplate = Annotated[str, _at_most(MAX_BODY)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)


class Device(_Section):
    name: SingleLine = "doormail"
    timezone: str = "UTC"
    datetime_format: SingleLine = "%Y-%m-%d %H:%M:%S"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Prague)") from None
        return value

    @field_validator("datetime_format")
    @classmethod
    def _usable_format(cls, value: str) -> str:
        if "%" not in value:
            raise ValueError("needs at least one strftime code such as %H:%M")
        return value


class OAuth2(_Section):
    token_url: str = ""
    client_id: str = ""
    client_secret: str = ""
    refresh_token: str = ""
    scope: str = ""


class Dkim(_Section):
    enabled: bool = False
    domain: str = ""
    selector: str = ""
    private_key: str = ""


class Smtp(_Section):
    enabled: bool = False
    server: SingleLine = ""
    port: int = Field(25, ge=1, le=65535)
    security: Literal["auto", "starttls", "tls", "none"] = "auto"
    verify_certificate: bool = True
    ca: Literal["system", "ca1", "ca2", "ca3"] = "system"
    username: SingleLine = ""
    password: str = ""
    certificate: Literal["self-signed", "user1", "user2", "user3"] = "self-signed"
    from_: OptionalAddress = Field("", alias="from")
    deliver_in: int = Field(86400, ge=60, le=604800)
    auth: Literal["password", "xoauth2"] = "password"
    oauth2: OAuth2 = Field(default_factory=OAuth2)
    dkim: Dkim = Field(default_factory=Dkim)
    max_message_bytes: int = Field(10_000_000, ge=100_000)

    @field_validator("server")
    @classmethod
    def _host_name(cls, value: str) -> str:
        value = value.strip()
        if value and not _HOST.match(value):
            raise ValueError(f"{value!r} is not a host name or IP address")
        return value


class Snapshots(_Section):
    attach: bool = False
    count: int = Field(1, ge=1, le=5)
    resolution: Resolution = "640x480"


DEFAULT_CALL_SUBJECT = "$DeviceName$: call to $DialNumber$ at $DateTime$"
DEFAULT_CALL_BODY = (
    "<p><b>$DeviceName$</b> called <b>$DialNumber$</b> $User$.</p>\n<p>Time: $DateTime$</p>"
)
DEFAULT_ACCESS_SUBJECT = "$DeviceName$: $AuthIdValid$ $AuthIdType$ access at $DateTime$"
DEFAULT_ACCESS_BODY = (
    "<p><b>$AuthIdValid:Valid=Access granted,Invalid=Access denied$</b> at <b>$DeviceName$</b>.</p>\n"
    "<p>User: $User$<br>$AuthIdType$: $AuthId$<br>Time: $DateTime$</p>"
)


def _event_body(what: str) -> str:
    return f"<p><b>$DeviceName$</b>: {what}.</p>\n<p>Time: $DateTime$</p>"


class EmailOnCall(_Section):
    send: Literal["never", "any", "missed"] = "never"
    default_to: AddressList = ""
    subject: SubjectTemplate = DEFAULT_CALL_SUBJECT
    body: BodyTemplate = DEFAULT_CALL_BODY
    snapshots: Snapshots = Field(default_factory=Snapshots)


class EmailOnAccess(_Section):
    send: Literal["never", "all", "denied"] = "never"
    default_to: AddressList = ""
    subject: SubjectTemplate = DEFAULT_ACCESS_SUBJECT
    body: BodyTemplate = DEFAULT_ACCESS_BODY
    snapshots: Snapshots = Field(default_factory=Snapshots)


class EventMessage(_Section):
    enabled: bool = False
    subject: SubjectTemplate
    body: BodyTemplate


class EmailOnEvent(_Section):
    to: AddressList = ""
    sip_registration_lost: EventMessage = Field(
        default_factory=lambda: EventMessage(
            subject="$DeviceName$: SIP registration lost",
            body=_event_body("the SIP registration was lost"),
        )
    )
    device_rebooted: EventMessage = Field(
        default_factory=lambda: EventMessage(
            subject="$DeviceName$: device restarted",
            body=_event_body("the device was restarted"),
        )
    )
    tamper: EventMessage = Field(
        default_factory=lambda: EventMessage(
            subject="$DeviceName$: tamper switch activated",
            body=_event_body("the tamper switch was activated"),
        )
    )
    snapshots: Snapshots = Field(default_factory=Snapshots)


class Camera(_Section):
    source: Literal["none", "http", "mjpeg", "rtsp"] = "none"
    url: SingleLine = ""
    username: SingleLine = ""
    password: str = ""
    buffer_seconds: int = Field(30, ge=1, le=600)

    @model_validator(mode="after")
    def _url_for_source(self) -> Camera:
        schemes = {"http": ("http://", "https://"), "mjpeg": ("http://", "https://")}
        schemes["rtsp"] = ("rtsp://", "rtsps://")
        if self.source != "none":
            if not self.url:
                raise SettingsError(
                    "camera.url", f"is required when camera.source is {self.source}"
                )
            if not self.url.lower().startswith(schemes[self.source]):
                allowed = " or ".join(schemes[self.source])
                raise SettingsError("camera.url", f"must start with {allowed}")
        return self


class Limits(_Section):
    per_recipient_per_hour: int = Field(0, ge=0)
    access_denied_burst: int = Field(0, ge=0)


class Licensing(_Section):
    enforce: bool = False


class Mqtt(_Section):
    enabled: bool = False
    url: str = "mqtt://127.0.0.1:1883"
    topic: str = "doormail/+/events"
    username: str = ""
    password: str = ""


class Sources(_Section):
    mqtt: Mqtt = Field(default_factory=Mqtt)


class Settings(_Section):
    """The whole configuration document of SPEC section 2."""

    device: Device = Field(default_factory=Device)
    smtp: Smtp = Field(default_factory=Smtp)
    email_on_call: EmailOnCall = Field(default_factory=EmailOnCall)
    email_on_access: EmailOnAccess = Field(default_factory=EmailOnAccess)
    email_on_event: EmailOnEvent = Field(default_factory=EmailOnEvent)
    camera: Camera = Field(default_factory=Camera)
    limits: Limits = Field(default_factory=Limits)
    licensing: Licensing = Field(default_factory=Licensing)
    sources: Sources = Field(default_factory=Sources)

    @model_validator(mode="after")
    def _usable_when_enabled(self) -> Settings:
        smtp = self.smtp
        if smtp.enabled:
            if not smtp.server:
                raise SettingsError("smtp.server", "is required when smtp.enabled is true")
            if not smtp.from_:
                raise SettingsError("smtp.from", "is required when smtp.enabled is true")
        if smtp.auth == "xoauth2" and smtp.enabled:
            for key in ("token_url", "client_id", "refresh_token"):
                if not getattr(smtp.oauth2, key):
                    raise SettingsError(
                        f"smtp.oauth2.{key}", "is required when smtp.auth is xoauth2"
                    )
        if smtp.dkim.enabled:
            for key in ("domain", "selector", "private_key"):
                if not getattr(smtp.dkim, key):
                    raise SettingsError(f"smtp.dkim.{key}", "is required when smtp.dkim.enabled")
        return self

    def document(self) -> dict[str, Any]:
        """The full document, secrets included (for storage only)."""
        return self.model_dump(mode="json", by_alias=True)

    def public(self) -> dict[str, Any]:
        """The document as the API shows it: each secret replaced by `<name>_set`, a password
        in a URL by `***`."""
        doc = self.document()
        for path in SECRET_PATHS:
            parent = _parent(doc, path)
            parent[f"{path[-1]}_set"] = bool(parent.pop(path[-1]))
        _mask_urls(doc)
        return doc

    def exported(self) -> dict[str, Any]:
        """The document for `config export`: secrets left out entirely, a password in a URL
        shown as `***` (an import into the same installation keeps it)."""
        doc = self.document()
        for path in SECRET_PATHS:
            _parent(doc, path).pop(path[-1])
        _mask_urls(doc)
        return doc


def _mask_urls(doc: dict[str, Any]) -> None:
    for dotted in destinations.URLS_WITH_PASSWORDS:
        path = tuple(dotted.split("."))
        parent = _parent(doc, path)
        parent[path[-1]] = destinations.mask_url(parent[path[-1]])


def _parent(doc: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    node = doc
    for key in path[:-1]:
        node = node[key]
    return node


def validate(document: Mapping[str, Any], *, stored: bool = False) -> Settings:
    """A Settings from a full document, or SettingsError naming the first bad field. A `stored`
    document, read back from storage, may keep templates longer than today's limits."""
    try:
        return Settings.model_validate(dict(document), context={_STORED: stored})
    except ValidationError as error:
        raise _first_error(error) from None
    except SettingsError:
        raise


def _first_error(error: ValidationError) -> SettingsError:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"])
    context = first.get("ctx", {}).get("error")
    if isinstance(context, SettingsError):
        return context
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "is not a known setting"
    elif first["type"] == "literal_error":
        message = f"must be {message.removeprefix('Input should be ')}"
    return SettingsError(field or "config", message)


def _strip_secret_flags(patch: dict[str, Any]) -> None:
    """`password_set` and friends are read-only views; accept them in a GET→PUT round trip."""
    for path in SECRET_PATHS:
        node: Any = patch
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(f"{path[-1]}_set", None)


def merge(base: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `patch` merged in key by key (JSON merge patch without deletions)."""
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def apply_patch(current: Settings, patch: Mapping[str, Any]) -> Settings:
    """PATCH: the given keys merged into the current settings, validated as a whole. A stored
    secret whose destination the patch changes must be given again (SettingsError naming it)."""
    settings, unbound = _patched(current, patch)
    _refuse(unbound)
    return settings


def apply_trial(
    current: Settings, patch: Mapping[str, Any]
) -> tuple[Settings, list[destinations.Unbound]]:
    """Unsaved settings for a trial (Apply & Test): as `apply_patch`, but a stored secret
    whose destination the patch changes is left empty instead of refused; the list says which,
    so that the trial can say so where the secret would have been sent."""
    settings, unbound = _patched(current, patch)
    if not unbound:
        return settings, unbound
    trial = settings.model_copy(deep=True)
    for secret in unbound:
        *parents, last = secret.secret.split(".")
        node: Any = trial
        for key in parents:
            node = getattr(node, key)
        setattr(node, last, "")
    return trial, unbound


def _patched(
    current: Settings, patch: Mapping[str, Any]
) -> tuple[Settings, list[destinations.Unbound]]:
    if not isinstance(patch, Mapping):
        raise SettingsError("config", "must be a JSON object")
    changes = copy.deepcopy(dict(patch))
    _strip_secret_flags(changes)
    stored = current.document()
    _unmask_urls(changes, stored)
    settings = validate(merge(stored, changes))
    return settings, destinations.unbound_secrets(stored, changes, settings.document())


def apply_replace(current: Settings, document: Mapping[str, Any]) -> Settings:
    """PUT: the whole document replaced. Secrets left out keep their stored values, so that a
    GET→PUT round trip (which never sees them) does not wipe them; send "" to clear one. A
    stored secret whose destination the document changes must be given again."""
    if not isinstance(document, Mapping):
        raise SettingsError("config", "must be a JSON object")
    replacement = copy.deepcopy(dict(document))
    _strip_secret_flags(replacement)
    stored = current.document()
    _unmask_urls(replacement, stored)
    given = copy.deepcopy(replacement)
    for path in SECRET_PATHS:
        node: Any = replacement
        for key in path[:-1]:
            node = node.setdefault(key, {}) if isinstance(node, dict) else None
        if isinstance(node, dict) and path[-1] not in node:
            node[path[-1]] = _parent(stored, path)[path[-1]]
    settings = validate(replacement)
    _refuse(destinations.unbound_secrets(stored, given, settings.document()))
    return settings


def _unmask_urls(request: dict[str, Any], stored: dict[str, Any]) -> None:
    """Put the stored password back into a URL sent with `***` (as GET and export show it),
    provided the URL still points where the stored one does."""
    for dotted in destinations.URLS_WITH_PASSWORDS:
        *parents, last = dotted.split(".")
        node: Any = request
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        value = node.get(last) if isinstance(node, dict) else None
        if not isinstance(value, str) or not destinations.has_masked_password(value):
            continue
        unmasked = destinations.unmask_url(value, destinations.lookup(stored, dotted) or "")
        if unmasked is None:
            raise SettingsError(
                dotted,
                f"holds {destinations.MASK} for its password, but the stored URL has no password"
                " for that host: write the password into the URL again",
            )
        assert isinstance(node, dict)
        node[last] = unmasked


def _refuse(unbound: list[destinations.Unbound]) -> None:
    if unbound:
        first = unbound[0]
        raise SettingsError(first.secret, f'{first.message} (send "" to clear it)')
