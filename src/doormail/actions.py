"""Sending e-mail on demand (SPEC section 7), the Automation action Send E-Mail and the
intercom's `/api/email/send`: render the given (or the E-Mail on Call) templates, take snapshots,
compose one message per address and queue them. Parsing the two request forms is the web's job."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from doormail.camera import Pictures
from doormail.compose import compose
from doormail.outbox import OutboxItem
from doormail.settings import Settings
from doormail.templates import datetime_value, render

if TYPE_CHECKING:
    from doormail.app import Service

__all__ = ["KIND", "SendEmail", "SmtpDisabled", "send_email"]

KIND = "send_email"


class SmtpDisabled(Exception):
    """`smtp.enabled` is false: nothing is sent on demand either."""

    def __init__(self) -> None:
        super().__init__("smtp.enabled is false: turn on SMTP Service Enabled to send e-mail")
        self.message = str(self)
        self.field = "smtp.enabled"


@dataclass(frozen=True)
class SendEmail:
    """One validated request to send a mail now. `subject`/`body` None means the E-Mail on Call
    templates; `user_name` (when the mail is for a user of the list) fills `$User$`."""

    recipients: tuple[str, ...]
    subject: str | None = None
    body: str | None = None
    sender: str | None = None
    snapshots: int = 1
    time_span: float = 1.0
    width: int = 640
    height: int = 480
    user_name: str | None = None


@dataclass(frozen=True)
class Queued:
    """What was queued: the id the messages share (their `X-Doormail-Event`) and the entries."""

    event_id: str
    items: list[OutboxItem]


async def send_email(service: Service, order: SendEmail) -> Queued:
    """Queue the mail for every recipient and wake the delivery worker; returns once the
    messages are committed. Raises SmtpDisabled when `smtp.enabled` is false."""
    settings = await asyncio.to_thread(service.settings.load)
    if not settings.smtp.enabled:
        raise SmtpDisabled()
    now = time.time()
    snapshots = Pictures([])
    if order.snapshots > 0:
        snapshots = await service.camera.snapshots(
            now - order.time_span, now, order.snapshots, order.width, order.height
        )
    event_id = f"send-email-{uuid.uuid4().hex}"
    items = await asyncio.to_thread(_queue, service, settings, order, event_id, now, snapshots)
    service.worker.notify()
    return Queued(event_id, items)


def _queue(
    service: Service,
    settings: Settings,
    order: SendEmail,
    event_id: str,
    now: float,
    snapshots: Pictures,
) -> list[OutboxItem]:
    at = datetime.fromtimestamp(now, UTC)
    values = {"DeviceName": settings.device.name, "DateTime": datetime_value(at, settings.device)}
    if order.user_name is not None:
        values["User"] = order.user_name
    subject = order.subject if order.subject is not None else settings.email_on_call.subject
    body = order.body if order.body is not None else settings.email_on_call.body
    rendered_subject = render(subject, values, html=False)
    rendered_body = render(body, values, html=True)
    messages = [
        compose(
            settings=settings,
            event_id=event_id,
            kind=KIND,
            recipient=recipient,
            subject=rendered_subject,
            html_body=rendered_body,
            snapshots=snapshots.images,
            at=at,
            notes=snapshots.notes,
            sender=order.sender,
        )
        for recipient in _unique(order.recipients)
    ]
    with service.engine.begin() as connection:
        return service.queue.enqueue(connection, messages, settings.smtp.deliver_in, now)


def _unique(addresses: Sequence[str]) -> list[str]:
    """Each address once (compared without case), in the order given."""
    seen: set[str] = set()
    unique = []
    for address in addresses:
        if address.lower() not in seen:
            seen.add(address.lower())
            unique.append(address)
    return unique
