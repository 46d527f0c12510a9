"""The manual's rules (SPEC section 4): whether an event is due a mail, to which addresses, with
which templates, placeholder values and snapshot span, and why not when it is not. Pure: it
asks the users list but sends, renders and stores nothing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from doormail import placeholders
from doormail.events import (
    Access,
    CallEnded,
    CallRinging,
    DeviceRebooted,
    Event,
    SipRegistrationLost,
    TamperActivated,
)
from doormail.placeholders import DEVICE_EVENT_KINDS, Context, Kind
from doormail.settings import EventMessage, Settings, Snapshots, split_addresses
from doormail.users.model import User, UserLookup

NO_RECIPIENT = "no recipient"
SMTP_DISABLED = "smtp.enabled is false"
RINGING = "call.ringing does not send mail; the mail is sent when the call ends"
NOT_OUTGOING = "only outgoing calls send mail"


@dataclass(frozen=True)
class Mail:
    """One mail that is due: its recipient address, templates, values and snapshot span."""

    kind: Kind
    recipient: str
    subject_template: str
    body_template: str
    values: Mapping[str, str]
    snapshots: Snapshots
    span: tuple[float, float]
    # Send E-Mail's own (an event's mail takes both from its tab and smtp.from): the order's
    # From address, and its snapshots' width and height, which need not be a tab's resolution.
    sender: str | None = None
    size: tuple[int, int] | None = None

    @property
    def picture_size(self) -> tuple[int, int]:
        """The snapshots' width and height."""
        if self.size is not None:
            return self.size
        width, height = self.snapshots.resolution.split("x")
        return int(width), int(height)


@dataclass(frozen=True)
class Decision:
    """The mails an event causes; when there are none, `reason` says why. `concerned` are the
    addresses the event is about: its mails' recipients, or, when it made none, those it would
    have reached had it been due (so a resident's address finds the events that did not mail
    it, and why)."""

    mails: tuple[Mail, ...]
    reason: str | None
    # A denied access (flood control counts those per device).
    denied: bool = False
    concerned: tuple[str, ...] = ()

    @classmethod
    def none(cls, reason: str) -> Decision:
        return cls((), reason)


@dataclass(frozen=True)
class _Letter:
    """What every recipient of one event's mail shares."""

    kind: Kind
    subject: str
    body: str
    snapshots: Snapshots
    span: tuple[float, float]


def decide(
    event: Event, settings: Settings, users: UserLookup, *, ringing_at: float | None = None
) -> Decision:
    """The mails `event` causes under `settings`, and the addresses it concerns; `ringing_at`
    is when a call started ringing."""
    decision = _decide(event, settings, users, ringing_at)
    if decision.mails:
        concerned = [mail.recipient for mail in decision.mails]
    else:
        concerned = would_reach(event, settings, users)
    return replace(decision, concerned=tuple(dict.fromkeys(concerned)))


def would_reach(event: Event, settings: Settings, users: UserLookup) -> list[str]:
    """The addresses a mail of `event` goes to when it is due: the called users or Default To,
    the identifier's user or Default To, or the Send to E-Mail Address."""
    if isinstance(event, CallRinging):
        return []
    if isinstance(event, CallEnded):
        called = [(value, called_user(value, users)) for value in event.called]
        return [address for address, _ in call_recipients(event, settings, called)]
    if isinstance(event, Access):
        user = access_user(event, users)
        return access_recipients(settings, user, access_valid(event, user))
    return split_addresses(settings.email_on_event.to)


def _decide(
    event: Event, settings: Settings, users: UserLookup, ringing_at: float | None
) -> Decision:
    if isinstance(event, CallRinging):
        return Decision.none(RINGING)
    if not settings.smtp.enabled:
        return Decision.none(SMTP_DISABLED)
    if isinstance(event, CallEnded):
        return call_mails(event, settings, users, ringing_at)
    if isinstance(event, Access):
        return access_mails(event, settings, users)
    return device_event_mails(event, settings)


def one_mail_per_address(
    letter: _Letter, recipients: Iterable[tuple[str, Mapping[str, str]]]
) -> Decision:
    """One mail per recipient address, so that no resident sees another's address; an address
    reached twice (two users sharing it, or a user also in Default To) gets one mail."""
    seen: set[str] = set()
    mails: list[Mail] = []
    for address, values in recipients:
        if address.lower() in seen:
            continue
        seen.add(address.lower())
        mails.append(
            Mail(
                letter.kind,
                address,
                letter.subject,
                letter.body,
                values,
                letter.snapshots,
                letter.span,
            )
        )
    return Decision(tuple(mails), None) if mails else Decision.none(NO_RECIPIENT)


# --- E-Mail on Call --------------------------------------------------------------------------


def call_mails(
    event: CallEnded, settings: Settings, users: UserLookup, ringing_at: float | None = None
) -> Decision:
    """E-Mail on Call: the mail is sent when the connection is terminated."""
    reason = call_not_due(event, settings)
    if reason:
        return Decision.none(reason)
    called = [(value, called_user(value, users)) for value in event.called]
    tab = settings.email_on_call
    letter = _Letter("call", tab.subject, tab.body, tab.snapshots, call_span(event, ringing_at))
    return one_mail_per_address(letter, call_recipients(event, settings, called))


def call_not_due(event: CallEnded, settings: Settings) -> str | None:
    """Only outgoing calls; `any` sends after every call, `missed` only when not answered."""
    send = settings.email_on_call.send
    if event.direction != "outgoing":
        return NOT_OUTGOING
    if send == "never":
        return "email_on_call.send is never"
    if send == "missed" and event.answered:
        return "email_on_call.send is missed and the call was answered"
    return None


def called_user(value: str, users: UserLookup) -> User | None:
    """The user a called value names: a number in the users list, else a user id."""
    return users.by_number(value) or users.by_id(value)


def call_recipients(
    event: CallEnded, settings: Settings, called: Sequence[tuple[str, User | None]]
) -> list[tuple[str, Mapping[str, str]]]:
    """Each called user with an e-mail gets the mail; a number not in the users list, or a user
    without an e-mail, sends it to Default To instead, once per event."""
    recipients: list[tuple[str, Mapping[str, str]]] = []
    to_default: list[tuple[str, User | None]] = []
    several = len(called) > 1
    for value, user in called:
        if user is not None and user.addresses:
            values = _call_values(event, settings, [(value, user)], several)
            recipients.extend((address, values) for address in user.addresses)
        else:
            to_default.append((value, user))
    if to_default:
        values = _call_values(event, settings, to_default, several)
        default_to = split_addresses(settings.email_on_call.default_to)
        recipients.extend((address, values) for address in default_to)
    return recipients


def _call_values(
    event: CallEnded,
    settings: Settings,
    called: Sequence[tuple[str, User | None]],
    several: bool,
) -> dict[str, str]:
    """The placeholders of one E-Mail on Call mail: about the called values it is sent for."""
    context = Context("call", settings, event.at, event, called=tuple(called), several=several)
    return placeholders.values(context)


def call_span(event: CallEnded, ringing_at: float | None) -> tuple[float, float]:
    """Snapshots are taken from the call's ringing (or its `started_at`) to its end."""
    end = event.at.timestamp()
    start = ringing_at
    if start is None and event.started_at is not None:
        start = event.started_at.timestamp()
    if start is None or start > end:
        start = end
    return start, end


# --- E-Mail on Access ------------------------------------------------------------------------


def access_mails(event: Access, settings: Settings, users: UserLookup) -> Decision:
    """E-Mail on Access: on a card, Bluetooth or fingerprint identification."""
    user = access_user(event, users)
    valid = access_valid(event, user)
    reason = access_not_due(settings, valid)
    if reason:
        return Decision.none(reason)
    tab = settings.email_on_access
    letter = _Letter("access", tab.subject, tab.body, tab.snapshots, moment(event.at))
    values = placeholders.values(
        Context("access", settings, event.at, event, user=user, valid=valid)
    )
    addresses = access_recipients(settings, user, valid)
    decided = one_mail_per_address(letter, ((address, values) for address in addresses))
    return replace(decided, denied=not valid)


def access_user(event: Access, users: UserLookup) -> User | None:
    """The user of an access: the event's `user`, else the one the identifier belongs to."""
    if event.user is not None:
        return users.by_id(event.user)
    if event.auth_type == "card":
        return users.by_card(event.auth_id)
    if event.auth_type == "bluetooth":
        return users.by_bluetooth(event.auth_id)
    return users.by_fingerprint(event.auth_id)


def access_valid(event: Access, user: User | None) -> bool:
    """The event's `valid`, else valid when the identifier belongs to a user."""
    return event.valid if event.valid is not None else user is not None


def access_not_due(settings: Settings, valid: bool) -> str | None:
    """`all` sends at every access attempt, `denied` only when the access is denied."""
    send = settings.email_on_access.send
    if send == "never":
        return "email_on_access.send is never"
    if send == "denied" and valid:
        return "email_on_access.send is denied and the access was valid"
    return None


def access_recipients(settings: Settings, user: User | None, valid: bool) -> list[str]:
    """A valid identifier of a user with an e-mail goes to that user; an invalid identifier, or
    a user without an e-mail, goes to Default To."""
    if valid and user is not None and user.addresses:
        return user.addresses
    return split_addresses(settings.email_on_access.default_to)


# --- E-Mail on Event -------------------------------------------------------------------------


def device_event_mails(
    event: SipRegistrationLost | DeviceRebooted | TamperActivated, settings: Settings
) -> Decision:
    """E-Mail on Event: each enabled one sends to the Send to E-Mail Address."""
    kind = DEVICE_EVENT_KINDS[event.type]
    message: EventMessage = getattr(settings.email_on_event, kind)
    if not message.enabled:
        return Decision.none(f"email_on_event.{kind}.enabled is false")
    tab = settings.email_on_event
    letter = _Letter(kind, message.subject, message.body, tab.snapshots, moment(event.at))
    values = placeholders.values(Context(kind, settings, event.at, event))
    return one_mail_per_address(letter, ((address, values) for address in split_addresses(tab.to)))


def moment(at: datetime) -> tuple[float, float]:
    """Snapshots of an access or device event are taken at its moment."""
    return at.timestamp(), at.timestamp()


# --- Send E-Mail (SPEC section 7) ------------------------------------------------------------

SEND_EMAIL_KIND: Kind = "send_email"


@dataclass(frozen=True)
class SendEmail:
    """An order to send a mail now: the Automation action Send E-Mail, or the intercom's
    `/api/email/send`. `subject`/`body` None means the E-Mail on Call templates; `snapshots`
    pictures of `width`x`height` over the last `time_span` seconds; `sender` replaces smtp.from
    in the From header; `user` fills `$User$` when the mail is for a user of the list."""

    recipients: tuple[str, ...]
    subject: str | None = None
    body: str | None = None
    sender: str | None = None
    snapshots: int = 1
    time_span: float = 1.0
    width: int = 640
    height: int = 480
    user: User | None = None


def send_email_mails(order: SendEmail, settings: Settings, at: datetime) -> Decision:
    """The mails of a Send E-Mail order placed at `at`: one per address it names (the order
    names them; no users list is asked), while SMTP Service Enabled is on."""
    if not settings.smtp.enabled:
        return Decision.none(SMTP_DISABLED)
    tab = settings.email_on_call
    pictures = Snapshots(attach=order.snapshots > 0, count=max(order.snapshots, 1))
    end = at.timestamp()
    letter = _Letter(
        SEND_EMAIL_KIND,
        tab.subject if order.subject is None else order.subject,
        tab.body if order.body is None else order.body,
        pictures,
        (end - order.time_span, end),
    )
    values = placeholders.values(Context(SEND_EMAIL_KIND, settings, at, user=order.user))
    decided = one_mail_per_address(letter, ((address, values) for address in order.recipients))
    size = (order.width, order.height)
    mails = tuple(replace(mail, sender=order.sender, size=size) for mail in decided.mails)
    return Decision(mails, decided.reason)
