"""Preparing a decision's messages without a database or a camera server: one set of snapshots
per span, count and size, asked of the camera once; each mail's templates rendered with its own
values and composed with its pictures; an order's From kept."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage

from doormail import rules
from doormail.pipeline.prepare import prepare_messages
from doormail.pipeline.snapshots import take
from doormail.settings import Settings, Snapshots, apply_patch
from tests.camera.fakes import NoCamera
from tests.conftest import RecordingCamera

AT = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
SETTINGS = apply_patch(
    Settings(),
    {
        "device": {"name": "Front door"},
        "smtp": {"enabled": True, "server": "127.0.0.1", "from": "door@example.org"},
    },
)
SPAN = (AT.timestamp() - 13, AT.timestamp())


def mail(
    recipient: str,
    user: str,
    snapshots: Snapshots | None = None,
    span: tuple[float, float] = SPAN,
    **extra: object,
) -> rules.Mail:
    return rules.Mail(
        kind="call",
        recipient=recipient,
        subject_template="$DeviceName$: call for $User$",
        body_template="<p>Hello <b>$User$</b></p>",
        values={"DeviceName": "Front door", "User": user},
        snapshots=snapshots or Snapshots(attach=True, count=2, resolution="320x240"),
        span=span,
        **extra,  # type: ignore[arg-type]
    )


def parsed(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


async def test_recipients_of_one_event_share_one_set_of_snapshots() -> None:
    camera = RecordingCamera(NoCamera())
    mails = [mail("alice@example.com", "Alice"), mail("bob@example.com", "Bob")]
    pictures = await take(camera, mails)
    assert camera.asked == [(*SPAN, 2, 320, 240)]
    messages = prepare_messages(mails, SETTINGS, pictures, event_id="call-7", at=AT)
    attached = [
        [part.get_content() for part in parsed(m.data).iter_attachments()] for m in messages
    ]
    assert len(attached[0]) == 2 and attached[0] == attached[1]


async def test_each_span_count_and_size_is_its_own_set() -> None:
    camera = RecordingCamera(NoCamera())
    mails = [
        mail("a@example.com", "A"),
        mail("b@example.com", "B", span=(SPAN[1], SPAN[1])),
        mail("c@example.com", "C", Snapshots(attach=True, count=1, resolution="640x480")),
        mail("d@example.com", "D", size=(200, 100)),
        mail("e@example.com", "E", Snapshots(attach=False)),
    ]
    await take(camera, mails)
    assert camera.asked == [
        (*SPAN, 2, 320, 240),
        (SPAN[1], SPAN[1], 2, 320, 240),
        (*SPAN, 1, 640, 480),
        (*SPAN, 2, 200, 100),
    ]


async def test_each_message_is_rendered_with_its_own_values() -> None:
    mails = [mail("alice@example.com", "Alice"), mail("bob@example.com", "<Bob>")]
    pictures = await take(NoCamera(), mails)
    alice, bob = prepare_messages(mails, SETTINGS, pictures, event_id="call-7", at=AT)
    assert (alice.recipient, alice.subject, alice.kind) == (
        "alice@example.com",
        "Front door: call for Alice",
        "call",
    )
    assert bob.subject == "Front door: call for <Bob>"
    html = parsed(bob.data).get_body(("html",))
    assert html is not None and "<b>&lt;Bob&gt;</b>" in html.get_content()
    assert parsed(alice.data)["X-Doormail-Event"] == "call-7"


def test_a_mail_without_snapshots_needs_no_camera() -> None:
    [message] = prepare_messages(
        [mail("a@example.com", "A", Snapshots(attach=False))], SETTINGS, {}, event_id="e", at=AT
    )
    assert list(parsed(message.data).iter_attachments()) == []


def test_an_orders_from_replaces_smtp_from_in_the_header_only() -> None:
    order_mail = mail("a@example.com", "A", Snapshots(attach=False), sender="desk@example.org")
    [message] = prepare_messages([order_mail], SETTINGS, {}, event_id="send-email-1", at=AT)
    assert message.sender == "door@example.org"
    assert "desk@example.org" in str(parsed(message.data)["From"])
