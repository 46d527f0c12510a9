"""Digests and burst summaries (SPEC section 9): when a group of `held` mails is due (the hour
has ended; a minute passed without a denied attempt), one mail to each recipient lists them, a
line per held mail with its time, its subject and, when it had pictures, a small copy of its
first. The digest is queued and named on the mails it carries in one transaction (its event id
is the group, so a second maker adds nothing); each held mail then ends as its digest does."""

from __future__ import annotations

import asyncio
import email
import email.policy
import html
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy import Engine

from doormail.compose import compose
from doormail.mail import OutgoingMessage
from doormail.outbox import HeldMail, Queue
from doormail.pipeline.flood import BURST_GROUP, end_burst, group_kind
from doormail.placeholders import datetime_value
from doormail.settings import Settings

log = logging.getLogger("doormail.digest")

# Each held mail's picture in a digest: small enough that a digest of a busy hour stays a few
# hundred kilobytes.
THUMBNAIL = (160, 120)
POLL_SECONDS = 1.0


class Digests:
    """Makes the digests that are due; `run()` goes into the service's runners."""

    def __init__(
        self,
        engine: Engine,
        queue: Queue,
        load_settings: Callable[[], Settings],
        on_queued: Callable[[], None],
        *,
        clock: Callable[[], float] = time.time,
        poll: float = POLL_SECONDS,
    ) -> None:
        self._engine = engine
        self._queue = queue
        self._load_settings = load_settings
        self._on_queued = on_queued
        self._clock = clock
        self._poll = poll

    async def run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.make_due)
            except Exception:
                log.exception("making the due digests failed; trying again shortly")
            await asyncio.sleep(self._poll)

    def make_due(self) -> int:
        """Queue every digest that is due now; how many were queued."""
        now = self._clock()
        due = self._queue.held_groups_due(now)
        if not due:
            return 0
        settings = self._load_settings()
        made = sum(self._make(group, recipient, settings, now) for group, recipient in due)
        if made:
            self._on_queued()
        return made

    def _make(self, group: str, recipient: str, settings: Settings, now: float) -> int:
        held = self._queue.held_mail(group, recipient)
        if not held:
            return 0
        message = digest_message(settings, group, recipient, held, now)
        with self._engine.begin() as connection:
            [item] = self._queue.enqueue(connection, [message], settings.smtp.deliver_in, now)
            self._queue.attach_digest(connection, item.id, [mail.id for mail in held])
            if group.startswith(f"{BURST_GROUP}:"):
                end_burst(connection, group)
        return 1


def digest_message(
    settings: Settings, group: str, recipient: str, held: Sequence[HeldMail], now: float
) -> OutgoingMessage:
    """The digest (or burst summary) of `held` for `recipient`."""
    kind = group_kind(group)
    device = settings.device
    first, last = (datetime.fromtimestamp(m.created_at, UTC) for m in (held[0], held[-1]))
    if kind == "digest":
        subject = f"{device.name}: {len(held)} more notifications this hour"
        intro = (
            f"More notifications than the hourly limit for {recipient} came in between "
            f"{datetime_value(first, device)} and {datetime_value(last, device)}. "
            f"Here they are in one message:"
        )
    else:
        subject = f"{device.name}: {len(held)} more denied accesses"
        intro = (
            f"{len(held)} more access attempts were denied between "
            f"{datetime_value(first, device)} and {datetime_value(last, device)}. "
            f"They are listed here in one message:"
        )
    pictures: list[bytes] = []
    lines = []
    for mail in held:
        at = datetime_value(datetime.fromtimestamp(mail.created_at, UTC), device)
        line = f"<li>{html.escape(at)} &mdash; {html.escape(mail.subject)}"
        picture = first_picture(mail.data)
        if picture is not None:
            pictures.append(picture)
            line += f" (picture snapshot-{len(pictures)}.jpg)"
        lines.append(line + "</li>")
    body = f"<p>{html.escape(intro)}</p>\n<ul>\n" + "\n".join(lines) + "\n</ul>"
    return compose(
        settings=settings,
        event_id=group,
        kind=kind,
        recipient=recipient,
        subject=subject,
        html_body=body,
        snapshots=pictures,
        at=datetime.fromtimestamp(now, UTC),
    )


def first_picture(data: bytes) -> bytes | None:
    """The first JPEG picture of a message, made small; None when it has none."""
    # Pillow is loaded when a digest first has a picture, not by every service that starts.
    from doormail.camera.scale import BadFrame, encode_jpeg, open_jpeg

    message = email.message_from_bytes(data, policy=email.policy.default)
    for part in message.walk():
        if part.get_content_type() != "image/jpeg":
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        try:
            image = open_jpeg(payload, THUMBNAIL)
        except BadFrame:
            continue
        image.thumbnail(THUMBNAIL)
        return encode_jpeg(image)
    return None
