"""The configuration model: every parameter of the manual's E-Mail section, its default and its
validation (SPEC section 2). The API, the web UI, the CLI and import/export are views of it; it
does not know where it is stored."""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from doormail import destinations

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
RESOLUTIONS: tuple[str, ...] = get_args(Resolution)
# The licenses that matter to e-mail (SPEC 11, `licensing.enforce`).
License = Literal["gold", "enhanced_integration"]
MAIL_LICENSES: tuple[str, ...] = get_args(License)

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


_DNS_NAME = re.compile(
    r"^[A-Za-z0-9_]([A-Za-z0-9_\-]*[A-Za-z0-9])?(\.[A-Za-z0-9_]([A-Za-z0-9_\-]*[A-Za-z0-9])?)*$"
)


def _check_dkim_key(pem: str) -> None:
    """Refuse a DKIM key that cannot sign: PEM, no passphrase, RSA of 1024 bits at least
    (RFC 8301) or Ed25519 (RFC 8463)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    try:
        key = serialization.load_pem_private_key(pem.encode("utf-8"), password=None)
    except (ValueError, TypeError) as error:
        raise ValueError(f"is not a PEM private key without a passphrase ({error})") from None
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < 1024:
        raise ValueError("an RSA key for DKIM needs at least 1024 bits (RFC 8301)")
    if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise ValueError("DKIM signs with an RSA or an Ed25519 key")


class SettingsError(ValueError):
    """Configuration values that cannot be accepted: `field` is the first one's dotted path and
    `message` what is wrong with it; `problems` lists every bad field with its message."""

    def __init__(self, field: str, message: str, problems: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.problems: tuple[tuple[str, str], ...] = tuple(problems) or ((field, message),)

    @classmethod
    def of(cls, problems: Sequence[tuple[str, str]]) -> SettingsError:
        """One error for several bad fields (at least one), the first named first."""
        return cls(problems[0][0], problems[0][1], problems)


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
SubjectTemplate = Annotated[
    str,
    _at_most(MAX_SUBJECT),
    AfterValidator(_single_line),
    Field(
        title="Subject", description="The e-mail subject; placeholders are replaced before sending."
    ),
]
BodyTemplate = Annotated[
    str,
    _at_most(MAX_BODY),
    Field(title="Body", description="The text to be sent; HTML formatting marks may be used."),
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)


# Every setting carries the manual's label as its `title` and a one-line help as its
# `description`; the settings UI and the API's schema show them. Two more JSON Schema keys say
# what a form needs beyond them: the manual's name for each choice of a setting, and how a tab
# words the settings of a section it shares with other tabs (the same Snapshots, say).
_CHOICES = "x-choices"
_WORDED = "x-worded"


def _choices(names: Mapping[str, str]) -> dict[str, Any]:
    return {_CHOICES: dict(names)}


def _worded(**wording: str | tuple[str, str]) -> dict[str, Any]:
    """A label, or a label and its help, for settings of the section below, by key."""
    worded: dict[str, dict[str, str]] = {}
    for key, words in wording.items():
        title, description = (words, None) if isinstance(words, str) else words
        worded[key] = {"title": title} | ({"description": description} if description else {})
    return {_WORDED: worded}


def _comma_separated(value: object) -> object:
    # A form's text field gives "gold, enhanced_integration"; the API gives a list.
    return split_addresses(value) if isinstance(value, str) else value


class Device(_Section):
    name: SingleLine = Field(
        "doormail", title="Device Name", description="Intercom identification: $DeviceName$."
    )
    # A new installation takes the machine's zone, and a format that shows it, at its first
    # start (firststart).
    timezone: str = Field(
        "UTC",
        title="Time Zone",
        description="IANA time zone for $DateTime$, e.g. Europe/Prague.",
    )
    datetime_format: SingleLine = Field(
        "%Y-%m-%d %H:%M:%S",
        title="Date and Time Format",
        description="strftime codes for $DateTime$, e.g. %d.%m.%Y %H:%M.",
    )

    serial: SingleLine = Field(
        "",
        title="Serial Number",
        description="The intercom's serial number, when known: each mail's footer names it.",
    )
    licenses: Annotated[list[License], BeforeValidator(_comma_separated)] = Field(
        default_factory=list,
        title="Licenses",
        description="The licenses of the intercom; e-mail needs Gold or Enhanced Integration "
        "when licensing is enforced.",
    )

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
    token_url: str = Field(
        "", title="OAuth2 Token URL", description="Where access tokens are fetched."
    )
    client_id: str = Field(
        "", title="OAuth2 Client ID", description="The registered application's ID."
    )
    client_secret: str = Field(
        "", title="OAuth2 Client Secret", description="The application's secret."
    )
    refresh_token: str = Field(
        "",
        title="OAuth2 Refresh Token",
        description="Exchanged for access tokens before they expire.",
    )
    scope: str = Field(
        "", title="OAuth2 Scope", description="The scope asked for, if the provider needs one."
    )


class Dkim(_Section):
    enabled: bool = Field(False, title="DKIM Signing", description="DKIM-sign each message.")
    domain: str = Field("", title="DKIM Domain", description="The signing domain (d=).")
    selector: str = Field("", title="DKIM Selector", description="The DNS selector (s=).")
    private_key: str = Field(
        "", title="DKIM Private Key", description="The PEM private key for the selector."
    )

    @field_validator("domain", "selector")
    @classmethod
    def _dns_labels(cls, value: str) -> str:
        value = value.strip()
        if value and not _DNS_NAME.match(value):
            raise ValueError(f"{value!r} is not a DNS name (letters, digits, - and .)")
        return value

    @field_validator("private_key")
    @classmethod
    def _signing_key(cls, value: str) -> str:
        if value:
            _check_dkim_key(value)
        return value


class Smtp(_Section):
    enabled: bool = Field(
        False, title="SMTP Service Enabled", description="Enable or disable sending e-mails."
    )
    server: SingleLine = Field(
        "", title="Server Address", description="The SMTP server's host name or IP address."
    )
    port: int = Field(
        25,
        ge=1,
        le=65535,
        title="Server Port",
        description="The SMTP server port; typically 25, 587 for submission, 465 for implicit TLS.",
    )
    security: Literal["auto", "starttls", "tls", "none"] = Field(
        "auto",
        title="Security",
        description="Auto: implicit TLS on port 465, otherwise STARTTLS when offered.",
        json_schema_extra=_choices(
            {
                "auto": "Auto",
                "starttls": "STARTTLS",
                "tls": "Implicit TLS",
                "none": "None (plain text)",
            }
        ),
    )
    verify_certificate: bool = Field(
        True,
        title="Verify Server Certificate",
        description="Check the server's certificate and host name.",
    )
    ca: Literal["system", "ca1", "ca2", "ca3"] = Field(
        "system",
        title="CA Certificate",
        description="The CA certificates the server's certificate is checked against.",
        json_schema_extra=_choices({"system": "System", "ca1": "CA1", "ca2": "CA2", "ca3": "CA3"}),
    )
    username: SingleLine = Field(
        "",
        title="Username",
        description="Login for SMTP authentication; leave empty if the server needs none.",
    )
    password: str = Field("", title="Password", description="The SMTP server login password.")
    certificate: Literal["self-signed", "user1", "user2", "user3"] = Field(
        "self-signed",
        title="User Certificate",
        description="The client certificate and key shown to the server (see Certificates).",
        json_schema_extra=_choices(
            {"self-signed": "SelfSigned", "user1": "User1", "user2": "User2", "user3": "User3"}
        ),
    )
    from_: OptionalAddress = Field(
        "",
        alias="from",
        title="From Address",
        description="The sender address of every e-mail.",
    )
    deliver_in: int = Field(
        86400,
        ge=60,
        le=604800,
        title="Deliver In",
        description="Seconds to keep retrying an unreachable server.",
    )
    auth: Literal["password", "xoauth2"] = Field(
        "password",
        title="Authentication",
        description="Password, or OAuth 2.0 (XOAUTH2) for Microsoft 365 and Gmail.",
        json_schema_extra=_choices({"password": "Password", "xoauth2": "OAuth 2.0 (XOAUTH2)"}),
    )
    oauth2: OAuth2 = Field(default_factory=OAuth2)
    dkim: Dkim = Field(default_factory=Dkim)
    max_message_bytes: int = Field(
        10_000_000,
        ge=100_000,
        title="Maximum Message Size",
        description="Bytes; snapshots are scaled down, then dropped, to stay below it.",
    )

    @field_validator("server")
    @classmethod
    def _host_name(cls, value: str) -> str:
        value = value.strip()
        if value and not _HOST.match(value):
            raise ValueError(f"{value!r} is not a host name or IP address")
        return value


class Snapshots(_Section):
    attach: bool = Field(
        False,
        title="Attach Snapshots",
        description="Attach one or more camera snapshots taken during ringing or calling.",
    )
    count: int = Field(
        1,
        ge=1,
        le=5,
        title="Number of Snapshots Attached",
        description="How many snapshots to attach to the e-mail message.",
    )
    resolution: Resolution = Field(
        "640x480",
        title="Snapshot Resolution",
        description="The resolution of the images sent.",
        json_schema_extra=_choices({r: r.replace("x", " × ") for r in RESOLUTIONS}),
    )


# The defaults read well on a phone: the subject's first words say what happened and where,
# the body shows the pictures first ($Snapshots$), then what happened, who and when, as a
# small table of labels and values in the reader's own colours.
_HEADLINE = '<p style="margin:0 0 8px;font-size:18px;line-height:1.3"><b>{what}</b> at <b>$DeviceName$</b></p>\n'
_ROW = (
    '<tr><td style="padding:2px 16px 2px 0;vertical-align:top;opacity:0.75">{label}:</td>'
    '<td style="padding:2px 0;vertical-align:top">{value}</td></tr>\n'
)


def _default_body(what: str, rows: list[tuple[str, str]]) -> str:
    """`$Snapshots$`, the headline saying what happened where, then the rows."""
    table = "".join(_ROW.format(label=label, value=value) for label, value in rows)
    return (
        "$Snapshots$\n"
        + _HEADLINE.format(what=what)
        + '<table role="presentation" cellpadding="0" cellspacing="0" border="0" '
        + 'style="border-collapse:collapse">\n'
        + table
        + "</table>"
    )


DEFAULT_CALL_SUBJECT = (
    "$CallState:Missed=Missed call,Answered=Call$ at $DeviceName$ — $DialNumber$ $User$"
)
DEFAULT_CALL_BODY = _default_body(
    "$CallState:Missed=Missed call,Answered=Answered call$",
    [("Called", "$DialNumber$ $User$"), ("Time", "$DateTime$")],
)
_ACCESS_OUTCOME = "$AuthIdValid:Valid=Access granted,Invalid=Access denied$"
DEFAULT_ACCESS_SUBJECT = (
    f"{_ACCESS_OUTCOME} at $DeviceName$ — "
    "$AuthIdType:Card=card,Bluetooth=Bluetooth,Fingerprint=fingerprint$ $AuthId$"
)
DEFAULT_ACCESS_BODY = _default_body(
    _ACCESS_OUTCOME,
    [("User", "$User$"), ("$AuthIdType$", "$AuthId$"), ("Time", "$DateTime$")],
)


def _event_body(what: str) -> str:
    return _default_body(what, [("Device", "$DeviceName$"), ("Time", "$DateTime$")])


class EmailOnCall(_Section):
    send: Literal["never", "any", "missed"] = Field(
        "never",
        title="Send E-Mail to User at",
        description="Which ended outgoing calls send an e-mail to the called user.",
        json_schema_extra=_choices(
            {
                "never": "Do Not Send E-mail",
                "any": "Any Outgoing Call",
                "missed": "Missed Outgoing Call",
            }
        ),
    )
    default_to: AddressList = Field(
        "",
        title="Default To",
        description="Used when the called user has no e-mail; several addresses separated by commas.",
    )
    subject: SubjectTemplate = DEFAULT_CALL_SUBJECT
    body: BodyTemplate = DEFAULT_CALL_BODY
    snapshots: Snapshots = Field(default_factory=Snapshots)


class EmailOnAccess(_Section):
    send: Literal["never", "all", "denied"] = Field(
        "never",
        title="Send E-Mail at",
        description="Which access attempts send an e-mail.",
        json_schema_extra=_choices(
            {"never": "Do Not Send E-Mail", "all": "All Accesses", "denied": "Denied Accesses"}
        ),
    )
    default_to: AddressList = Field(
        "",
        title="Default To",
        description="For invalid identifiers and users without e-mail; addresses separated by commas.",
    )
    subject: SubjectTemplate = DEFAULT_ACCESS_SUBJECT
    body: BodyTemplate = DEFAULT_ACCESS_BODY
    snapshots: Snapshots = Field(default_factory=Snapshots)


class EventMessage(_Section):
    """One message of E-Mail on Event; the section holding it names it (see `EmailOnEvent`)."""

    enabled: bool = Field(False, title="Send", description="Send this message.")
    subject: SubjectTemplate
    body: BodyTemplate = Field(title="E-Mail Body")


def _event_message(title: str, option: str, whenever: str, subject: str, what: str) -> Any:
    """An E-Mail on Event message: the manual's title for it and the name of its option under
    Send to E-Mail Address, when it is sent, and its default subject and body."""
    return Field(
        default_factory=lambda: EventMessage(subject=subject, body=_event_body(what)),
        title=title,
        description=f"The message sent whenever {whenever}.",
        json_schema_extra=_worded(enabled=(option, f"Send a message whenever {whenever}.")),
    )


class EmailOnEvent(_Section):
    to: AddressList = Field(
        "",
        title="Send to E-Mail Address",
        description="Where the event messages go; several addresses separated by commas.",
    )
    sip_registration_lost: EventMessage = _event_message(
        "SIP Registration Lost Message",
        "SIP Registration Lost",
        "the SIP registration gets lost",
        "SIP registration lost at $DeviceName$",
        "SIP registration lost",
    )
    device_rebooted: EventMessage = _event_message(
        "Device Restart Message",
        "Device Rebooted",
        "the device is restarted",
        "Device restarted at $DeviceName$",
        "Device restarted",
    )
    tamper: EventMessage = _event_message(
        "Tamper Activated Message",
        "Tamper Switch Activation",
        "the tamper switch is activated",
        "Tamper switch activated at $DeviceName$",
        "Tamper switch activated",
    )
    snapshots: Snapshots = Field(
        default_factory=Snapshots,
        json_schema_extra=_worded(
            attach="Attach Camera Snapshots", count="Count of Snapshots to Be Attached"
        ),
    )


class Camera(_Section):
    source: Literal["none", "http", "mjpeg", "rtsp"] = Field(
        "none",
        title="Camera Source",
        description="None sends an N/A image; HTTP fetches a snapshot URL; MJPEG and RTSP read a stream.",
        json_schema_extra=_choices(
            {
                "none": "None",
                "http": "HTTP snapshot",
                "mjpeg": "MJPEG stream",
                "rtsp": "RTSP stream",
            }
        ),
    )
    url: SingleLine = Field(
        "",
        title="Camera URL",
        description="The snapshot URL (HTTP) or the stream URL (MJPEG, RTSP).",
    )
    username: SingleLine = Field(
        "", title="Camera Username", description="Login for the camera, if it needs one."
    )
    password: str = Field("", title="Camera Password", description="The camera's password.")
    buffer_seconds: int = Field(
        30,
        ge=1,
        le=600,
        title="Buffer Length",
        description="Seconds of pictures kept, so snapshots can cover the ringing.",
    )

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
    per_recipient_per_hour: int = Field(
        0,
        ge=0,
        title="Mails per Recipient per Hour",
        description="0 = no cap; above it, mails are held and sent as one digest each hour.",
    )
    access_denied_burst: int = Field(
        0,
        ge=0,
        title="Denied Access Burst",
        description="0 = off; after N denied accesses within a minute, one summary mail.",
    )


class Licensing(_Section):
    enforce: bool = Field(
        False,
        title="Enforce Licensing",
        description="Mail only for devices with the Gold or Enhanced Integration license.",
    )


class Mqtt(_Section):
    enabled: bool = Field(False, title="MQTT Enabled", description="Receive events over MQTT.")
    url: str = Field(
        "mqtt://127.0.0.1:1883", title="Broker URL", description="e.g. mqtt://127.0.0.1:1883."
    )
    topic: str = Field(
        "doormail/+/events",
        title="Topic",
        description="Each message is one event; + matches the device.",
    )
    username: str = Field("", title="MQTT Username", description="Login for the broker, if needed.")
    password: str = Field("", title="MQTT Password", description="The broker password.")
    client_id: SingleLine = Field(
        "",
        title="Client ID",
        description="Empty: doormail- and the host name; fixed, so the broker keeps the session.",
    )


class Sources(_Section):
    mqtt: Mqtt = Field(default_factory=Mqtt)


class Storage(_Section):
    keep_sent_days: int = Field(
        30,
        ge=1,
        le=36500,
        title="Keep Sent Mail (days)",
        description="Sent, failed and expired mail older than this is deleted.",
    )
    keep_events_days: int = Field(
        30,
        ge=1,
        le=36500,
        title="Keep Events (days)",
        description="Events older than this are deleted, with what came of them.",
    )


class Settings(_Section):
    """The whole configuration document of SPEC section 2."""

    device: Device = Field(
        default_factory=Device,
        title="Device",
        description="The intercom identification and time used in the messages.",
    )
    smtp: Smtp = Field(
        default_factory=Smtp,
        title="SMTP",
        description="Where and how the e-mails are sent. Apply & Test saves the settings and "
        "sends a test e-mail.",
    )
    email_on_call: EmailOnCall = Field(
        default_factory=EmailOnCall,
        title="E-Mail on Call",
        description="An e-mail after every outgoing call, sent when the connection is terminated.",
    )
    email_on_access: EmailOnAccess = Field(
        default_factory=EmailOnAccess,
        title="E-Mail on Access",
        description="An e-mail when a card, Bluetooth or fingerprint identification is made at "
        "the reader.",
    )
    email_on_event: EmailOnEvent = Field(
        default_factory=EmailOnEvent,
        title="E-Mail on Event",
        description="An e-mail when the SIP registration gets lost, the device is rebooted or "
        "the tamper switch is activated.",
    )
    camera: Camera = Field(
        default_factory=Camera,
        title="Camera",
        description="Where the snapshots attached to the e-mails come from.",
    )
    limits: Limits = Field(default_factory=Limits)
    licensing: Licensing = Field(default_factory=Licensing)
    sources: Sources = Field(default_factory=Sources)
    storage: Storage = Field(default_factory=Storage)

    @model_validator(mode="wrap")
    @classmethod
    def _every_problem(cls, data: Any, handler: ModelWrapValidatorHandler[Settings]) -> Settings:
        """A document with bad fields is not checked as a whole by pydantic (the checks below
        need valid fields): the server and From Address that SMTP Service Enabled needs are
        looked for in it here, so that they are reported with the rest (SPEC section 1)."""
        try:
            return handler(data)
        except ValidationError as error:
            problems = list(_every_error(error).problems)
            missing = [p for p in _missing_when_enabled(data) if p[0] not in dict(problems)]
            if not missing:
                raise
            raise SettingsError.of(problems + missing) from None

    @model_validator(mode="after")
    def _usable_when_enabled(self) -> Settings:
        smtp = self.smtp
        problems: list[tuple[str, str]] = []
        if smtp.enabled:
            if not smtp.server:
                problems.append(("smtp.server", "is required when smtp.enabled is true"))
            if not smtp.from_:
                problems.append(("smtp.from", "is required when smtp.enabled is true"))
        if smtp.auth == "xoauth2" and smtp.enabled:
            for key in ("token_url", "client_id", "refresh_token"):
                if not getattr(smtp.oauth2, key):
                    problems.append((f"smtp.oauth2.{key}", "is required when smtp.auth is xoauth2"))
        if smtp.dkim.enabled:
            for key in ("domain", "selector", "private_key"):
                if not getattr(smtp.dkim, key):
                    problems.append((f"smtp.dkim.{key}", "is required when smtp.dkim.enabled"))
        if problems:
            raise SettingsError.of(problems)
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


@dataclass(frozen=True)
class Described:
    """What the model says about one setting (or section), for a form that shows it: the
    manual's label, a one-line help, its JSON Schema type, its limits, and each allowed value
    with the manual's name for it."""

    title: str
    description: str
    type: str
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[tuple[str, str], ...] = ()


def describe(path: str) -> Described:
    """The description of the setting at a dotted path (`smtp.port`, `email_on_event.snapshots
    .count`), as the API's JSON Schema states it; KeyError names a path without a description."""
    schema = _schema()
    node: Mapping[str, Any] = schema
    worded: Mapping[str, Any] = {}
    for key in path.split("."):
        properties = _resolved(node, schema).get("properties", {})
        if key not in properties:
            raise KeyError(f"{path}: {key} is not a setting")
        node = {**properties[key], **worded.get(key, {})}
        worded = node.get(_WORDED, {})
    # A section's title may be left to the definition it refers to (when the two are equal).
    resolved = _resolved(node, schema)
    title = node.get("title", resolved.get("title"))
    if title is None or "description" not in node:
        raise KeyError(f"{path} has no title and description in the settings model")
    names = node.get(_CHOICES, {})
    return Described(
        title=title,
        description=node["description"],
        type=resolved.get("type", "object"),
        minimum=resolved.get("minimum"),
        maximum=resolved.get("maximum"),
        choices=tuple((value, names.get(value, value)) for value in resolved.get("enum", ())),
    )


@functools.cache
def _schema() -> dict[str, Any]:
    return Settings.model_json_schema()


def _resolved(node: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """`node`, or the definition its `$ref` points to."""
    reference = node.get("$ref")
    if reference is None:
        return node
    return schema["$defs"][reference.removeprefix("#/$defs/")]  # type: ignore[no-any-return]


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
        raise _every_error(error) from None
    except SettingsError:
        raise


def _missing_when_enabled(document: Any) -> list[tuple[str, str]]:
    """What SMTP Service Enabled needs and a raw document leaves empty."""
    smtp = document.get("smtp") if isinstance(document, Mapping) else None
    if not isinstance(smtp, Mapping) or smtp.get("enabled") is not True:
        return []
    return [
        (f"smtp.{key}", "is required when smtp.enabled is true")
        for key in ("server", "from")
        if not smtp.get(key)
    ]


def _every_error(error: ValidationError) -> SettingsError:
    """Every bad field the validation found, in the order found (SPEC section 2)."""
    problems: list[tuple[str, str]] = []
    for detail in error.errors():
        context = detail.get("ctx", {}).get("error")
        if isinstance(context, SettingsError):
            problems += context.problems
            continue
        field = ".".join(str(part) for part in detail["loc"])
        message = detail["msg"].removeprefix("Value error, ")
        if detail["type"] == "extra_forbidden":
            message = "is not a known setting"
        elif detail["type"] == "literal_error":
            message = f"must be {message.removeprefix('Input should be ')}"
        problems.append((field or "config", message))
    return SettingsError.of(problems)


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
        raise SettingsError.of([(u.secret, f'{u.message} (send "" to clear it)') for u in unbound])
