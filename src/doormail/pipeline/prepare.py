"""The finished messages of a decision: each mail's templates rendered with its values and
composed with its pictures into exact bytes. CPU work (templates, MIME, maybe JPEG scaling to
fit `smtp.max_message_bytes`), so callers run it in a worker thread; events, Send E-Mail and
Apply & Test all build their messages here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from doormail import templates
from doormail.compose import compose
from doormail.mail import OutgoingMessage
from doormail.pipeline.snapshots import Taken, key_of
from doormail.rules import Mail
from doormail.settings import Settings


def prepare_messages(
    mails: Sequence[Mail],
    settings: Settings,
    pictures: Taken,
    *,
    event_id: str,
    at: datetime,
) -> list[OutgoingMessage]:
    """One message per mail, in order, for the event (or order) `event_id` that happened `at`."""
    return [prepare_message(mail, settings, pictures, event_id=event_id, at=at) for mail in mails]


def prepare_message(
    mail: Mail, settings: Settings, pictures: Taken, *, event_id: str, at: datetime
) -> OutgoingMessage:
    """The message of one mail; its pictures are the set `pictures` holds for it."""
    key = key_of(mail)
    shown = pictures.get(key) if key is not None else None
    return compose(
        settings=settings,
        event_id=event_id,
        kind=mail.kind,
        recipient=mail.recipient,
        subject=templates.render(mail.subject_template, mail.values, html=False),
        html_body=templates.render(mail.body_template, mail.values, html=True),
        snapshots=shown.images if shown else (),
        at=at,
        notes=shown.notes if shown else (),
        sender=mail.sender,
    )
