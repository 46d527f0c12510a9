"""The finished messages of a decision: each mail's templates rendered with its values and
composed with its pictures into exact bytes. CPU work (templates, MIME, maybe JPEG scaling to
fit `smtp.max_message_bytes`), so callers run it in a worker thread; events, Send E-Mail and
Apply & Test all build their messages here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from doormail import placeholders, templates
from doormail.camera import spread
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
    # The moments the camera was asked for, which its pictures stand nearest to.
    taken_at = [] if key is None else spread(key[0][0], key[0][1], key[1])
    return compose(
        settings=settings,
        event_id=event_id,
        kind=mail.kind,
        recipient=mail.recipient,
        # Stripped: an empty value at the end (a call without a user's name) leaves no space.
        subject=templates.render(
            mail.subject_template, mail.values, html=False, markup=placeholders.MARKUP
        ).strip(),
        html_body=templates.render(
            mail.body_template, mail.values, html=True, markup=placeholders.MARKUP
        ),
        snapshots=shown.images if shown else (),
        at=at,
        notes=shown.notes if shown else (),
        sender=mail.sender,
        taken_at=[datetime.fromtimestamp(moment, UTC) for moment in taken_at],
    )
