"""The placeholders of subjects and bodies (SPEC section 5), each stated once: its name, what the
manual says it stands for, the kinds of mail it applies to, a sample for previews, and how its
value comes from one mail's context. Also the kinds of mail and where each keeps its templates.
Rendering is `templates`' job; who gets a mail is decided in `rules`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, get_args
from zoneinfo import ZoneInfo

from doormail.events import Access, CallEnded, Event
from doormail.settings import Device, EmailOnAccess, EmailOnCall, EventMessage, Settings
from doormail.users.model import User

__all__ = [
    "AUTH_ID_TYPES",
    "DEVICE_EVENT_KINDS",
    "KINDS",
    "MARKUP",
    "PLACEHOLDERS",
    "SNAPSHOTS_MARK",
    "TEMPLATE_SECTIONS",
    "Context",
    "Kind",
    "Placeholder",
    "datetime_value",
    "device_name",
    "dial_number",
    "for_kind",
    "preview_values",
    "template_kind",
    "templates_for",
    "values",
]

# Every kind of mail doormail sends (the outbox's `kind`); each one's subject and body hold
# placeholders. The test e-mail of Apply & Test has fixed templates of its own.
Kind = Literal[
    "call", "access", "sip_registration_lost", "device_rebooted", "tamper", "send_email", "test"
]
# Where each kind of mail keeps its subject and body in the settings. A mail sent on demand has
# none of its own, so these are also the kinds a preview shows.
TEMPLATE_SECTIONS: Mapping[Kind, str] = {
    "call": "email_on_call",
    "access": "email_on_access",
    "sip_registration_lost": "email_on_event.sip_registration_lost",
    "device_rebooted": "email_on_event.device_rebooted",
    "tamper": "email_on_event.tamper",
}
KINDS: tuple[Kind, ...] = tuple(TEMPLATE_SECTIONS)
# The manual's name for each device event's message, which is also its kind of mail.
DEVICE_EVENT_KINDS: Mapping[str, Kind] = {
    "sip.registration_lost": "sip_registration_lost",
    "device.rebooted": "device_rebooted",
    "tamper.activated": "tamper",
}
_EVERY_KIND: frozenset[Kind] = frozenset(get_args(Kind))
_DEVICE_EVENTS: frozenset[Kind] = frozenset(DEVICE_EVENT_KINDS.values())

# What `$Snapshots$` renders to in a body: a comment no value can turn into (values are
# HTML-escaped), which `compose` replaces with the pictures once it knows which it attaches.
SNAPSHOTS_MARK = "<!--doormail:snapshots-->"

AUTH_ID_TYPES = {"card": "Card", "bluetooth": "Bluetooth", "fingerprint": "Fingerprint"}


@dataclass(frozen=True)
class Context:
    """What one mail's placeholder values come from: its kind, the settings, its moment, the
    event behind it (none for a mail sent on demand) and whom it concerns, as the rules found."""

    kind: Kind
    settings: Settings
    at: datetime
    event: Event | None = None
    # A call: the called numbers (or user ids) this mail is about, each with the user it names.
    called: tuple[tuple[str, User | None], ...] = ()
    # A call: whether it went to several users at once.
    several: bool = False
    # An access: the identifier's user; a mail sent on demand: the user it is for.
    user: User | None = None
    # An access: whether the identifier was valid.
    valid: bool | None = None


@dataclass(frozen=True)
class Placeholder:
    """One `$Name$`. `value` gives None when the mail's context does not know it: the
    placeholder then stays as written."""

    name: str
    description: str
    kinds: frozenset[Kind]
    value: Callable[[Context], str | None]
    # What a preview shows when its context (the device and the moment, no event) gives no value.
    sample: str | None = None
    # The manual's words for the kinds of mail where it says more than `description`.
    worded: Mapping[Kind, str] = field(default_factory=dict)
    beyond_manual: bool = False
    # It stands for markup doormail makes (SNAPSHOTS_MARK, which `compose` replaces), rendered
    # as it is in a body and to nothing in a subject; see MARKUP.
    markup: bool = False

    @property
    def token(self) -> str:
        return f"${self.name}$"

    def description_for(self, kind: Kind) -> str:
        return self.worded.get(kind, self.description)


def datetime_value(at: datetime, device: Device) -> str:
    """`$DateTime$`: `at` in `device.timezone`, formatted by `device.datetime_format` (a naive
    `at` is taken as UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(ZoneInfo(device.timezone)).strftime(device.datetime_format)


def device_name(event: Event | None, settings: Settings) -> str:
    """`$DeviceName$`: the event's device, or `device.name`."""
    return (event.device if event is not None else None) or settings.device.name


def dial_number(value: str, user: User | None) -> str:
    """The called number; a call addressed to a user id shows that user's first number."""
    if user is not None and value == user.id and value not in user.numbers and user.numbers:
        return user.numbers[0]
    return value


def _user(context: Context) -> str | None:
    if context.kind == "call":
        if not context.called:
            return None
        user = context.called[0][1] if len(context.called) == 1 else None
        return "" if context.several or user is None else user.name
    if context.user is not None:
        return context.user.name
    if isinstance(context.event, Access):
        # A user id the event gave that is not in the users list.
        return context.event.user or ""
    # No user is called for a device event; a mail sent on demand names one or none.
    return "" if context.kind in _DEVICE_EVENTS else None


def _dial_number(context: Context) -> str | None:
    return ", ".join(dial_number(value, user) for value, user in context.called) or None


def _auth_id(context: Context) -> str | None:
    return context.event.auth_id if isinstance(context.event, Access) else None


def _auth_id_type(context: Context) -> str | None:
    event = context.event
    return AUTH_ID_TYPES[event.auth_type] if isinstance(event, Access) else None


def _call_state(context: Context) -> str | None:
    event = context.event
    if not isinstance(event, CallEnded):
        return None
    return "Answered" if event.answered else "Missed"


def _auth_id_valid(context: Context) -> str | None:
    if context.valid is None:
        return None
    return "Valid" if context.valid else "Invalid"


# In the order of the manual's tables.
PLACEHOLDERS: tuple[Placeholder, ...] = (
    Placeholder(
        "User",
        "Called username",
        _EVERY_KIND,
        _user,
        sample="Alice Novak",
        worded={"call": "Called username (empty when the call went to several users at once)"},
    ),
    Placeholder(
        "DateTime",
        "Current date and time",
        _EVERY_KIND,
        lambda context: datetime_value(context.at, context.settings.device),
    ),
    Placeholder("DialNumber", "Called number", frozenset({"call"}), _dial_number, sample="101"),
    Placeholder(
        "AuthId", "User authentication ID", frozenset({"access"}), _auth_id, sample="0012AB34CD"
    ),
    Placeholder(
        "DeviceName",
        "Intercom identification",
        _EVERY_KIND,
        lambda context: device_name(context.event, context.settings),
    ),
    Placeholder(
        "AuthIdType",
        "Authentication type: Card, Bluetooth or Fingerprint",
        frozenset({"access"}),
        _auth_id_type,
        sample="Card",
    ),
    Placeholder(
        "AuthIdValid",
        "Identifier validity: Valid or Invalid",
        frozenset({"access"}),
        _auth_id_valid,
        sample="Valid",
    ),
    Placeholder(
        "CallState",
        "Call state: Missed or Answered",
        frozenset({"call"}),
        _call_state,
        sample="Missed",
        beyond_manual=True,
    ),
    Placeholder(
        "Snapshots",
        "Where the snapshots stand in the body (without it they follow the text)",
        _EVERY_KIND,
        lambda context: None,
        beyond_manual=True,
        markup=True,
    ),
)
# The placeholders that stand for markup doormail makes, with what they render to in a body
# (`templates.render(..., markup=MARKUP)`); `values` leaves them out.
MARKUP: Mapping[str, str] = {
    placeholder.name: SNAPSHOTS_MARK for placeholder in PLACEHOLDERS if placeholder.markup
}


def for_kind(kind: Kind) -> tuple[Placeholder, ...]:
    """The placeholders a kind of mail knows, in the manual's order."""
    return tuple(placeholder for placeholder in PLACEHOLDERS if kind in placeholder.kinds)


def values(context: Context) -> dict[str, str]:
    """Each placeholder of the mail's kind with its value; one the context does not know is
    left out, so that it stays as written."""
    found: dict[str, str] = {}
    for placeholder in for_kind(context.kind):
        value = placeholder.value(context)
        if value is not None:
            found[placeholder.name] = value
    return found


def preview_values(kind: Kind, settings: Settings, at: datetime) -> dict[str, str]:
    """What a preview of `kind` shows: the device's own name and `at` as the time, and the
    sample of every placeholder that needs an event."""
    context = Context(kind, settings, at)
    shown: dict[str, str] = {}
    for placeholder in for_kind(kind):
        value = placeholder.value(context)
        if value is None:
            value = placeholder.sample
        if value is not None:
            shown[placeholder.name] = value
    return shown


def template_kind(name: str) -> Kind:
    """The kind of mail with saved templates that `name` names; ValueError lists them."""
    for kind in KINDS:
        if kind == name:
            return kind
    raise ValueError(f"must be one of {', '.join(KINDS)}")


def templates_for(settings: Settings, kind: str) -> tuple[str, str]:
    """The saved (subject, body) templates of a kind of mail (one of KINDS)."""
    section: object = settings
    for key in TEMPLATE_SECTIONS[template_kind(kind)].split("."):
        section = getattr(section, key)
    assert isinstance(section, EmailOnCall | EmailOnAccess | EventMessage)
    return section.subject, section.body
