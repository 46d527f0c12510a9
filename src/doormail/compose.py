"""The MIME message (SPEC section 6): headers, a `multipart/alternative` body with a text part
made from the HTML, snapshots shown in the HTML body where `$Snapshots$` stood (or after the
text) through `cid:` references, each also a named part `snapshot-N.jpg` of the
`multipart/related` whole, kept within `smtp.max_message_bytes`. Pure: the same input gives the
same bytes but for the `Message-ID`."""

from __future__ import annotations

import hashlib
import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import Header
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from zoneinfo import ZoneInfo

from doormail.htmltext import html_to_text
from doormail.mail import OutgoingMessage
from doormail.placeholders import SNAPSHOTS_MARK, datetime_value
from doormail.settings import Device, Settings
from doormail.templates import header_safe

__all__ = ["compose", "html_document", "preview_pictures", "text_body"]

# What turning multipart/alternative into multipart/related adds: one more boundary and header,
# and per picture its Content-ID, disposition and the <img> that shows it.
_RELATED_OVERHEAD = 256
_PER_PICTURE_OVERHEAD = 640
_LEFT_OUT = "Snapshots were left out to keep the message within its size limit."
# Room for the notes that fitting the snapshots may add to both parts.
_NOTES_ALLOWANCE = 2048

# No background or text colour of our own: the reader's mail app chooses them, light or dark,
# and nothing is written over a picture.
_STYLE_BODY = (
    "margin:0;padding:16px;"
    "font-family:-apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;"
    "font-size:16px;line-height:1.5;-webkit-text-size-adjust:100%"
)
_STYLE_NOTE = "margin:16px 0 0;opacity:0.75;font-size:14px"
_STYLE_FIGURE = "margin:0 0 16px;padding:0"
_STYLE_IMAGE = "display:block;width:100%;max-width:640px;height:auto;border:0;border-radius:8px"
_STYLE_CAPTION = "margin:4px 0 0;opacity:0.75;font-size:13px"
_STYLE_FOOTER = "margin:24px 0 0;padding:12px 0 0;border-top:1px solid rgba(127,127,127,0.35);opacity:0.7;font-size:12px"
# Mail apps that honour `color-scheme` switch to their dark palette for the document instead of
# inverting it; the rest keep the reader's own colours since none is set here. Pictures never
# grow beyond the screen, and the page keeps a readable measure on a wide one.
_HEAD_STYLE = """\
:root { color-scheme: light dark; supported-color-schemes: light dark; }
body { margin: 0; padding: 16px; word-wrap: break-word; overflow-wrap: anywhere; }
img { max-width: 100%; height: auto; -ms-interpolation-mode: bicubic; }
a { color: inherit; text-decoration: underline; }
p { margin: 0 0 12px; }
.doormail-page { max-width: 600px; margin: 0 auto; }
.doormail-picture { margin: 0 0 16px; }
.doormail-picture img { display: block; width: 100%; border-radius: 8px; }
.doormail-caption, .doormail-note, .doormail-footer { opacity: 0.75; }
@media (max-width: 480px) {
  body { padding: 12px !important; }
  .doormail-page { max-width: 100% !important; }
}
@media (prefers-color-scheme: dark) {
  .doormail-picture img { outline: 1px solid rgba(255, 255, 255, 0.2); }
}
[data-ogsc] .doormail-picture img { outline: 1px solid rgba(255, 255, 255, 0.2); }
u + .body .doormail-page { width: 100% !important; }
#MessageViewBody, #MessageWebViewDiv { width: 100% !important; }
a[x-apple-data-detectors] {
  color: inherit !important; text-decoration: none !important; font-size: inherit !important;
  font-family: inherit !important; font-weight: inherit !important;
  line-height: inherit !important;
}
@media print { .doormail-picture { page-break-inside: avoid; } }
"""
_HEAD = (
    '<meta charset="utf-8">\n'
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
    '<meta http-equiv="X-UA-Compatible" content="IE=edge">\n'
    '<meta name="color-scheme" content="light dark">\n'
    '<meta name="supported-color-schemes" content="light dark">\n'
    # iOS Mail would otherwise scale the page down and turn a called number or the time into
    # a link to dial or to a calendar.
    '<meta name="x-apple-disable-message-reformatting">\n'
    '<meta name="format-detection" content="telephone=no, date=no, address=no, email=no">\n'
)
# Outlook on Windows renders with Word: it knows no max-width, so the page is held to 600 pixels
# by a table only it sees, and it gets a font it has instead of the system font stack.
_HEAD_OUTLOOK = (
    "<!--[if mso]>\n<noscript><xml><o:OfficeDocumentSettings><o:PixelsPerInch>96"
    "</o:PixelsPerInch></o:OfficeDocumentSettings></xml></noscript>\n"
    "<style>body, p, td, div { font-family: Arial, Helvetica, sans-serif !important; }</style>\n"
    "<![endif]-->\n"
)
_OUTLOOK_OPEN = (
    '<!--[if mso]><table role="presentation" width="600" align="center" cellpadding="0" '
    'cellspacing="0" border="0"><tr><td><![endif]-->\n'
)
_OUTLOOK_CLOSE = "<!--[if mso]></td></tr></table><![endif]-->\n"
_FOOTER = "Sent automatically by {device}. Reference for your installer: {event}."
# The installer tells two intercoms of one name apart by it.
_SERIAL = "{name} (serial {serial})"


@dataclass(frozen=True)
class _Picture:
    """One snapshot as the message carries it: its part's name and Content-ID, and the words
    that stand for it (the alt text, which says when it was taken)."""

    data: bytes
    filename: str
    cid: str
    words: str


def _pictures(
    images: Sequence[bytes], taken_at: Sequence[datetime], device: Device, domain: str
) -> list[_Picture]:
    """The snapshots numbered from 1, each with a Content-ID made from its bytes (so the same
    input gives the same message) and, when known, the time it was taken."""
    count = len(images)
    shown = []
    for number, image in enumerate(images, start=1):
        words = f"Snapshot {number} of {count}"
        if number <= len(taken_at):
            words += f", taken at {datetime_value(taken_at[number - 1], device)}"
        digest = hashlib.sha256(image).hexdigest()[:16]
        shown.append(
            _Picture(image, f"snapshot-{number}.jpg", f"snapshot-{number}.{digest}@{domain}", words)
        )
    return shown


def _pictures_html(pictures: Sequence[_Picture]) -> str:
    """The pictures as the HTML body shows them, one under the other, each with its caption."""
    return "".join(
        f'<div class="doormail-picture" style="{_STYLE_FIGURE}">'
        f'<img src="cid:{html.escape(picture.cid)}" alt="{html.escape(picture.words)}" '
        f'style="{_STYLE_IMAGE}">'
        f'<p class="doormail-caption" style="{_STYLE_CAPTION}">{html.escape(picture.words)}</p>'
        "</div>\n"
        for picture in pictures
    )


@dataclass(frozen=True)
class _Body:
    """The rendered body template, and the footer every message ends with."""

    html: str
    footer: str


def _pictures_words(pictures: Sequence[_Picture]) -> str:
    """What the text part says in their place: how many pictures are attached, and which."""
    if not pictures:
        return ""
    what = "1 picture is" if len(pictures) == 1 else f"{len(pictures)} pictures are"
    names = ", ".join(picture.filename for picture in pictures)
    return f"<p>{what} attached: {html.escape(names)}.</p>\n"


def _place(html_body: str, shown: str) -> str:
    """`shown` where `$Snapshots$` stood in the body (every place it stood), or after the text."""
    if SNAPSHOTS_MARK in html_body:
        return html_body.replace(SNAPSHOTS_MARK, shown)
    return f"{html_body}\n{shown}" if shown else html_body


def preview_pictures(html_body: str, count: int) -> str:
    """A preview's body: a framed box in place of each of `count` pictures to come."""
    boxes = "".join(
        f'<div style="{_STYLE_FIGURE}"><div style="border:2px dashed;border-radius:8px;'
        f'padding:48px 8px;text-align:center;opacity:0.75">snapshot-{number}.jpg</div></div>\n'
        for number in range(1, count + 1)
    )
    return _place(html_body, boxes)


def compose(
    *,
    settings: Settings,
    event_id: str,
    kind: str,
    recipient: str,
    subject: str,
    html_body: str,
    snapshots: Sequence[bytes],
    at: datetime,
    notes: Sequence[str] = (),
    sender: str | None = None,
    taken_at: Sequence[datetime] = (),
) -> OutgoingMessage:
    """One finished message to `recipient`. `subject` and `html_body` are already rendered,
    `snapshots` are JPEG images at their final resolution (`taken_at` says when each was
    taken, for its alt text), `notes` are added to the body. `sender` replaces `smtp.from` in
    the From header (the envelope stays `smtp.from`)."""
    envelope = settings.smtp.from_ or (sender or "")
    author = sender or envelope
    if not author:
        raise ValueError("smtp.from is empty: a message needs a From address")
    subject = header_safe(subject)
    domain = _domain_of(author)
    message_id = make_msgid(domain=domain)
    headers = _header_fields(
        author=_address(author, "sender"),
        display_name=header_safe(settings.device.name),
        envelope=_address(envelope, "smtp.from") if envelope else "",
        recipient=_address(recipient, "recipient"),
        subject=subject,
        date=format_datetime(_local(at, settings.device.timezone)),
        message_id=message_id,
        event_id=header_safe(event_id),
    )
    max_bytes = settings.smtp.max_message_bytes
    device = settings.device
    label = _SERIAL.format(name=device.name, serial=device.serial) if device.serial else device.name
    body = _Body(html_body, header_safe(_FOOTER.format(device=label, event=event_id)))
    images, all_notes = _within_limit(
        headers, subject, body, list(snapshots), list(notes), max_bytes
    )
    data = bytes(
        _build(headers, subject, body, _pictures(images, taken_at, device, domain), all_notes)
    )
    while len(data) > max_bytes and images:
        # The estimate fell short (it should not): the limit still holds, at the last image's cost.
        images.pop()
        shown = _pictures(images, taken_at, device, domain)
        data = bytes(_build(headers, subject, body, shown, [*all_notes, _LEFT_OUT]))
    _check_header_block(data, {name for name, _ in headers})
    return OutgoingMessage(
        event_id=event_id,
        kind=kind,
        sender=envelope or author,
        recipient=recipient,
        subject=subject,
        message_id=message_id,
        data=data,
    )


# Header fields are written exactly as given (no refolding): each value below is already folded
# and in ASCII. Python's email package, when handed a str, decodes any RFC 2047 encoded word in
# it first, so a user named "=?utf-8?q?=0D=0ABcc:...?=" would put a raw CR LF into the header
# (CVE-2024-6923 on Python < 3.11.10 / 3.12.5). Encoding the values here leaves it nothing to
# decode.


class _HeaderClasses(HeaderRegistry):
    """The email package's registry of header classes, keeping the class it makes for each
    name: the stock one makes a new class (a `type()` call) for every header it parses, a tenth
    of the time a message takes to build."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        made = self._made.get(name.lower())
        if made is None:
            made = self._made[name.lower()] = super().__getitem__(name)
        return made


_POLICY = SMTP.clone(refold_source="none", header_factory=_HeaderClasses())
_MAX_LINE = 78


def _header_fields(
    *,
    author: str,
    display_name: str,
    envelope: str,
    recipient: str,
    subject: str,
    date: str,
    message_id: str,
    event_id: str,
) -> list[tuple[str, str]]:
    fields = [("From", _mailbox("From", display_name, author))]
    if envelope and envelope != author:
        # RFC 5322 3.6.2: when the author is not the mailbox that sends, Sender names the latter.
        fields.append(("Sender", envelope))
    fields += [
        # In angle brackets: a bare address beside an HTML body with one picture is a spam
        # sign to SpamAssassin (TO_NO_BRKTS_HTML_IMG, 1.0 point); `<addr>` is the same
        # mailbox (RFC 5322 3.4, an angle-addr without a display name).
        ("To", f"<{recipient}>"),
        ("Subject", _text("Subject", subject)),
        ("Date", date),
        ("Message-ID", message_id),
        # RFC 3834: tells vacation responders and mailing lists not to answer.
        ("Auto-Submitted", "auto-generated"),
        ("X-Doormail-Event", _text("X-Doormail-Event", event_id)),
    ]
    return fields


def _text(name: str, value: str) -> str:
    """An unstructured header value, folded: plain when it is short-worded ASCII that cannot be
    taken for an encoded word, otherwise as RFC 2047 encoded words."""
    plain = (
        value.isascii()
        and value.isprintable()
        and "=?" not in value
        and all(len(word) <= _MAX_LINE - len(name) - 4 for word in value.split(" "))
    )
    return _folded(name, value, "us-ascii") if plain else _encoded(name, value)


def _encoded(name: str, value: str) -> str:
    """`value` as RFC 2047 encoded words, folded."""
    return _folded(name, value, "utf-8")


def _folded(name: str, value: str, charset: str) -> str:
    return Header(value, charset, maxlinelen=_MAX_LINE, header_name=name).encode(
        splitchars=" ", linesep="\n"
    )


def _mailbox(name: str, display_name: str, address: str) -> str:
    if not display_name:
        return address
    if (
        display_name.isascii()
        and display_name.isprintable()
        and "=?" not in display_name
        and len(display_name) <= _MAX_LINE // 2
    ):
        quoted = display_name.replace("\\", "\\\\").replace('"', '\\"')
        phrase = f'"{quoted}"'
    else:
        # Not as plain text, even when ASCII: a phrase's bare words cannot hold ; : , < @ and
        # the like, while encoded words carry any of them (and fold).
        phrase = _encoded(name, display_name)
    last_line = phrase.rsplit("\n", 1)[-1]
    first = "\n" not in phrase
    room = _MAX_LINE - (len(name) + 2 if first else 0) - len(last_line) - 1
    separator = " " if len(address) + 2 <= room else "\n "
    return f"{phrase}{separator}<{address}>"


def _address(value: str, what: str) -> str:
    """`local@domain` in ASCII (an international domain in its IDNA form), or ValueError."""
    local, at, domain = value.strip().rpartition("@")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"{what} {value!r} has a domain that cannot be encoded") from None
    address = f"{local}{at}{domain}"
    if not (at and local and address.isascii() and address.isprintable()) or len(address) > 254:
        raise ValueError(f"{what} {value!r} is not a plain ASCII e-mail address")
    if any(char in address for char in ' <>(),;:"[]\\'):
        raise ValueError(f"{what} {value!r} is not a plain e-mail address")
    return address


def _build(
    headers: Sequence[tuple[str, str]],
    subject: str,
    body: _Body,
    pictures: Sequence[_Picture],
    notes: Sequence[str],
) -> EmailMessage:
    message = EmailMessage(policy=_POLICY)
    for name, value in headers:
        message.set_raw(name, value)
    shown = _place(body.html, _pictures_html(pictures))
    text = text_body(_place(body.html, _pictures_words(pictures)), notes, footer=body.footer)
    document = html_document(shown, notes, title=subject, footer=body.footer)
    message.set_content(text, subtype="plain")
    message.add_alternative(document, subtype="html")
    if pictures:
        _relate(message, pictures)
    _finish_parts(message, headers, text, document, [picture.data for picture in pictures])
    return message


def _relate(message: EmailMessage, pictures: Sequence[_Picture]) -> None:
    """Turn `message` into a `multipart/related` whose root is its `multipart/alternative`
    body, followed by the pictures it refers to (RFC 2387): so the text part stays a whole
    alternative and the pictures still reach both. (The email package only nests it the other
    way round, with the text part outside the related whole.)"""
    alternative = EmailMessage(policy=_POLICY)
    alternative.set_raw("Content-Type", message["Content-Type"])
    alternative.set_payload(message.get_payload())
    del message["Content-Type"]
    message.set_raw("Content-Type", 'multipart/related; type="multipart/alternative"')
    message.set_payload([alternative])
    for picture in pictures:
        part = EmailMessage(policy=_POLICY)
        # Inline, to be shown where the HTML refers to it, and named, to be saved as a file.
        part.set_content(
            picture.data,
            maintype="image",
            subtype="jpeg",
            cid=f"<{picture.cid}>",
            disposition="inline",
            filename=picture.filename,
        )
        message.attach(part)


def _check_header_block(data: bytes, names: set[str]) -> None:
    """Refuse to hand on a message whose header block holds a line that is neither one of our
    fields nor a folded continuation: the last guard against header injection."""
    block = data.split(b"\r\n\r\n", 1)[0]
    allowed = {name.lower().encode() for name in names} | {b"mime-version", b"content-type"}
    for line in block.split(b"\r\n"):
        if b"\r" in line or b"\n" in line or len(line) > 998:
            raise ValueError("the message header would be malformed")
        if line[:1] in (b" ", b"\t"):
            continue
        if line.partition(b":")[0].lower() not in allowed:
            raise ValueError("the message header would hold an unexpected field")


def _finish_parts(
    message: EmailMessage,
    headers: Sequence[tuple[str, str]],
    text: str,
    document: str,
    images: Sequence[bytes],
) -> None:
    """Boundaries derived from the content instead of random ones, so that a message built
    twice from the same input has the same bytes (and a boundary cannot occur in a part).
    MIME-Version belongs to the top level only (RFC 2045 4), not to each part."""
    for part in message.iter_parts():
        del part["MIME-Version"]
        if part.is_multipart():
            for inner in part.iter_parts():
                del inner["MIME-Version"]
    digest = hashlib.sha256()
    pieces = [value for name, value in headers if name != "Message-ID"]
    for piece in (*pieces, text, document):
        encoded = piece.encode("utf-8", "surrogatepass")
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
    for image in images:
        digest.update(len(image).to_bytes(8, "big") + image)
    token = digest.hexdigest()[:40]
    if message.get_content_subtype() == "related":
        message.set_boundary(f"=_related_{token}")
        alternative = message.get_payload(0)
        assert isinstance(alternative, EmailMessage)
        alternative.set_boundary(f"=_alternative_{token}")
    else:
        message.set_boundary(f"=_alternative_{token}")


def text_body(html_body: str, notes: Sequence[str] = (), *, footer: str = "") -> str:
    """The `text/plain` part: the readable text of the HTML body, then the notes and the
    footer."""
    text = html_to_text(html_body)
    paragraphs = [text] if text else []
    paragraphs.extend(header_safe(note) for note in notes)
    if footer:
        paragraphs.append("-- \n" + footer)
    return "\n\n".join(paragraphs) + "\n"


def html_document(
    html_body: str, notes: Sequence[str] = (), *, title: str = "", footer: str = ""
) -> str:
    """The `text/html` part: the body in a small complete document that reads well on a phone,
    in the reader's own colours, light or dark; the notes (escaped) and the footer below it."""
    notes_html = "".join(
        f'<p class="doormail-note" style="{_STYLE_NOTE}">{html.escape(header_safe(note))}</p>\n'
        for note in notes
    )
    if footer:
        notes_html += (
            f'<p class="doormail-footer" style="{_STYLE_FOOTER}">{html.escape(footer)}</p>\n'
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head>\n'
        f"{_HEAD}<title>{html.escape(title)}</title>\n<style>\n{_HEAD_STYLE}</style>\n"
        f"{_HEAD_OUTLOOK}</head>\n"
        f'<body style="{_STYLE_BODY}">\n{_OUTLOOK_OPEN}'
        '<div class="doormail-page" style="max-width:600px;margin:0 auto">\n'
        f"{html_body}\n{notes_html}</div>\n{_OUTLOOK_CLOSE}</body></html>\n"
    )


def _within_limit(
    headers: Sequence[tuple[str, str]],
    subject: str,
    body: _Body,
    images: list[bytes],
    notes: list[str],
    max_bytes: int,
) -> tuple[list[bytes], list[str]]:
    """The snapshots (and notes) that keep the message within `max_bytes`: untouched when they
    fit, otherwise scaled down or left out by `fit_attachments`."""
    if not images:
        return images, notes
    from doormail.camera.fit import attachment_size, fit_attachments  # Pillow, when pictures

    rest = len(bytes(_build(headers, subject, body, [], notes))) + _RELATED_OVERHEAD
    rest += _PER_PICTURE_OVERHEAD * len(images)
    if rest + sum(attachment_size(image) for image in images) <= max_bytes:
        return images, notes
    fitted, fit_notes = fit_attachments(images, max(0, max_bytes - rest - _NOTES_ALLOWANCE))
    return fitted, [*notes, *fit_notes]


def _local(at: datetime, timezone: str) -> datetime:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(ZoneInfo(timezone))


def _domain_of(address: str) -> str:
    domain = address.rpartition("@")[2]
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return "doormail.invalid"
    hostname = domain and all(char.isalnum() or char in ".-" for char in domain)
    return domain if hostname else "doormail.invalid"
