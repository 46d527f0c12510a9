"""The one way every event and order goes (SPEC sections 4 and 7): decide on a read snapshot
(settings, users, the call's ringing, an earlier answer to the same event id), take the
snapshots with no transaction open, prepare the messages in a worker thread, and commit them.
An event is answered only once its mails are durably in the outbox. The intake is handed what it
uses; it knows nothing of HTTP, of the delivery worker (it calls `on_queued`) or of the ways in."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime

from doormail import placeholders, rules
from doormail.camera import SnapshotSource
from doormail.devices.model import DeviceModel, licensed, settings_for
from doormail.events import CallEnded, CallRinging, Event, EventError
from doormail.mail import OutgoingMessage
from doormail.pipeline import snapshots
from doormail.pipeline.commit import Accepted, CallMemory, Committer, Entry, Kept
from doormail.pipeline.flood import Flood
from doormail.pipeline.prepare import prepare_messages
from doormail.settings import Settings
from doormail.users.model import UserLookup

SEND_EMAIL_ID_PREFIX = "send-email-"
LICENSE_REASON = "license: the e-mail function needs the Gold or Enhanced Integration license"

log = logging.getLogger("doormail.intake")


@dataclass(frozen=True)
class _Decided:
    """A new event's id, the settings it was decided under, the decision, and its call; its
    messages already when they need no pictures."""

    event_id: str
    settings: Settings
    decision: rules.Decision
    call: CallMemory | None
    camera: SnapshotSource
    messages: tuple[OutgoingMessage, ...] | None = None


class Intake:
    """Events and Send E-Mail orders in, mails committed to the outbox."""

    def __init__(
        self,
        *,
        load_settings: Callable[[], Settings],
        users: Callable[[], AbstractContextManager[UserLookup]],
        camera: SnapshotSource,
        committer: Committer,
        on_queued: Callable[[], None],
        on_event: Callable[[str], None],
        devices: Callable[[], Mapping[str, DeviceModel]] = dict,
        camera_for: Callable[[DeviceModel], SnapshotSource] | None = None,
    ) -> None:
        self._load_settings = load_settings
        self._devices = devices
        self._camera_for = camera_for
        self._users = users
        self._camera = camera
        self._committer = committer
        self._on_queued = on_queued
        self._on_event = on_event

    async def submit(self, event: Event) -> Accepted:
        """Take one validated event: its mails committed, or the reason there are none; an
        event id seen before gets the earlier answer and makes no new mail."""
        decided = await asyncio.to_thread(self._decide, event)
        if isinstance(decided, Accepted):
            return decided
        messages = decided.messages
        if messages is None:
            mails = decided.decision.mails
            pictures = await snapshots.take(decided.camera, mails)
            prepared = await asyncio.to_thread(
                prepare_messages,
                mails,
                decided.settings,
                pictures,
                event_id=decided.event_id,
                at=event.at,
            )
            messages = tuple(prepared)
        entry = Entry(
            event_id=decided.event_id,
            event_type=event.type,
            messages=messages,
            deliver_in=decided.settings.smtp.deliver_in,
            reason=decided.decision.reason,
            call=decided.call,
            flood=_flood(event, decided),
            kept=_kept(event, decided),
        )
        accepted = await self._committer.commit(entry)
        if accepted.fresh:
            _log_taken(event.type, accepted)
            self._on_event(event.type)
            if accepted.emails:
                self._on_queued()
        return accepted

    def check_device(self, event: Event, field: str = "device") -> None:
        """EventError naming `field` when devices exist and the event names none of them
        (SPEC 11); without devices any `device` is taken as the name."""
        if event.device is None:
            return
        devices = self._devices()
        if devices and event.device not in devices:
            raise EventError(field, f"no device has the id {event.device!r}")

    async def send_email(self, order: rules.SendEmail) -> Accepted:
        """Queue the mail of a Send E-Mail order for each of its addresses; with SMTP Service
        Enabled off nothing is queued and the reason says so (`rules.SMTP_DISABLED`), nor
        when licensing is enforced and `device.licenses` lacks the e-mail function
        (LICENSE_REASON)."""
        settings = await asyncio.to_thread(self._load_settings)
        at = datetime.now(UTC)
        event_id = SEND_EMAIL_ID_PREFIX + uuid.uuid4().hex
        decision = _licensed(settings, rules.send_email_mails(order, settings, at))
        if not decision.mails:
            _log_taken("send-email", Accepted(event_id, (), decision.reason))
            return Accepted(event_id, (), decision.reason)
        pictures = await snapshots.take(self._camera, decision.mails)
        messages = await asyncio.to_thread(
            prepare_messages, decision.mails, settings, pictures, event_id=event_id, at=at
        )
        entry = Entry(
            event_id, None, tuple(messages), settings.smtp.deliver_in, flood=Flood(settings.limits)
        )
        accepted = await self._committer.commit(entry)
        _log_taken("send-email", accepted)
        self._on_queued()
        return accepted

    def _decide(self, event: Event) -> _Decided | Accepted:
        """The decision on what is stored now; the earlier answer when the id was seen. Mails
        without pictures are prepared right away, in the same trip to a worker thread."""
        settings, camera, known = self._device_settings(event)
        call = _call_of(event, settings)
        ringing = call if isinstance(event, CallEnded) else None
        recalled = self._committer.recall(event.id, ringing)
        if recalled.earlier is not None:
            return recalled.earlier
        with self._users() as users:
            decision = rules.decide(
                _named_by_settings(event) if known else event,
                settings,
                users,
                ringing_at=recalled.ringing_at,
            )
        decision = _licensed(settings, decision)
        event_id = event.id or uuid.uuid4().hex
        messages = None
        if not snapshots.wanted(decision.mails):
            prepared = prepare_messages(
                decision.mails, settings, {}, event_id=event_id, at=event.at
            )
            messages = tuple(prepared)
        return _Decided(event_id, settings, decision, _memory(event, call), camera, messages)

    def _device_settings(self, event: Event) -> tuple[Settings, SnapshotSource, bool]:
        """The settings and camera of the event's device: the shared settings with the named
        device's identity and camera put in, or the single `device.*`/`camera.*`; and whether
        the event named a known device."""
        settings = self._load_settings()
        self.check_device(event)
        device = self._devices().get(event.device) if event.device is not None else None
        if device is None:
            return settings, self._camera, False
        camera = self._camera_for(device) if self._camera_for is not None else self._camera
        return settings_for(settings, device), camera, True


def _named_by_settings(event: Event) -> Event:
    """A known device's event as the rules see it: `$DeviceName$` is then the device's name
    (in its settings), not the id the event gave."""
    return event.model_copy(update={"device": None})


def _licensed(settings: Settings, decision: rules.Decision) -> rules.Decision:
    """No mail when licensing is enforced and the device has neither license (SPEC 11)."""
    if decision.mails and settings.licensing.enforce and not licensed(settings.device.licenses):
        return rules.Decision.none(LICENSE_REASON)
    return decision


def _flood(event: Event, decided: _Decided) -> Flood:
    """The limits the event's mails are held under; a denied access is counted at its device."""
    denied_at = None
    if decided.decision.denied:
        denied_at = placeholders.device_name(event, decided.settings)
    return Flood(decided.settings.limits, denied_at)


def _kept(event: Event, decided: _Decided) -> Kept:
    """What the events list keeps of `event`: its moment, device and own fields, and the
    addresses the decision found it concerns."""
    fields = event.model_dump(mode="json", exclude={"type", "id", "at", "device"})
    return Kept(
        at=event.at.timestamp(),
        device=placeholders.device_name(event, decided.settings),
        fields=json.dumps({key: value for key, value in fields.items() if value is not None}),
        addresses=decided.decision.concerned,
    )


def _log_taken(kind: str, accepted: Accepted) -> None:
    """The log's one line per event taken (SPEC section 1): what it queued, or why nothing."""
    if accepted.emails:
        to = ", ".join(mail.to for mail in accepted.emails)
        log.info(
            "event %s %s: %d mail(s) queued to %s",
            accepted.event_id,
            kind,
            len(accepted.emails),
            to,
        )
    else:
        log.info("event %s %s: no mail (%s)", accepted.event_id, kind, accepted.reason)


def _call_of(event: Event, settings: Settings) -> tuple[str, str] | None:
    """The (device, call id) of a call event; call ids are unique per device only."""
    if not isinstance(event, CallRinging | CallEnded) or event.call_id is None:
        return None
    return placeholders.device_name(event, settings), event.call_id


def _memory(event: Event, call: tuple[str, str] | None) -> CallMemory | None:
    """A ringing call is remembered until it ends; an ended one is forgotten."""
    if call is None:
        return None
    ringing_at = event.at.timestamp() if isinstance(event, CallRinging) else None
    return CallMemory(call[0], call[1], ringing_at)
