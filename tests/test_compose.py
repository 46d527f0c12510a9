"""The message format (SPEC section 6): headers, the text part made from the HTML, attachments,
reproducible bytes, and the size limit."""

from __future__ import annotations

import email
import email.policy
import io
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from doormail import htmltext
from doormail.camera.na import na_image
from doormail.compose import compose, html_document, text_body
from doormail.htmltext import html_to_text
from doormail.mail import OutgoingMessage
from doormail.placeholders import SNAPSHOTS_MARK
from doormail.settings import Settings

AT = datetime(2024, 1, 15, 12, 30, 5, tzinfo=UTC)
FOOTER = "-- \nSent automatically by Front door. Reference for your installer: ev-42.\n"


def _settings(**smtp: object) -> Settings:
    return Settings.model_validate(
        {
            "smtp": {"from": "door@example.com", **smtp},
            "device": {"name": "Front door", "timezone": "Europe/Prague"},
        }
    )


def _compose(
    *,
    settings: Settings | None = None,
    subject: str = "Call to 101",
    html_body: str = "<p>Hello</p>",
    snapshots: Sequence[bytes] = (),
    notes: Sequence[str] = (),
    sender: str | None = None,
    taken_at: Sequence[datetime] = (),
) -> OutgoingMessage:
    return compose(
        settings=settings or _settings(),
        event_id="ev-42",
        kind="call",
        recipient="alice@example.com",
        subject=subject,
        html_body=html_body,
        snapshots=snapshots,
        at=AT,
        notes=notes,
        sender=sender,
        taken_at=taken_at,
    )


def _parse(message: OutgoingMessage) -> EmailMessage:
    parsed = email.message_from_bytes(message.data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _part(parsed: EmailMessage, subtype: str) -> str:
    part = parsed.get_body((subtype,))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def test_the_footer_names_the_intercom_by_its_serial_number_when_it_is_known() -> None:
    settings = _settings()
    settings.device.serial = "54-0880-2424"
    parsed = _parse(_compose(settings=settings))
    words = "Sent automatically by Front door (serial 54-0880-2424). Reference for your installer"
    assert words in _part(parsed, "plain")
    assert words in _part(parsed, "html")


def test_headers_name_the_device_the_recipient_and_the_event() -> None:
    message = _compose()
    parsed = _parse(message)
    assert parsed["From"] == "Front door <door@example.com>"
    assert parsed["To"] == "alice@example.com"
    assert parsed["Subject"] == "Call to 101"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["X-Doormail-Event"] == "ev-42"
    assert parsed["Message-ID"] == message.message_id
    assert message.message_id.endswith("@example.com>")
    assert parsed.get("Sender") is None


def test_date_is_the_events_time_with_the_device_offset() -> None:
    parsed = _parse(_compose())
    assert parsed["Date"] == "Mon, 15 Jan 2024 13:30:05 +0100"
    assert parsed["Date"].datetime == AT


def test_outgoing_message_carries_envelope_and_exact_crlf_bytes() -> None:
    message = _compose()
    assert (message.sender, message.recipient, message.kind) == (
        "door@example.com",
        "alice@example.com",
        "call",
    )
    assert message.event_id == "ev-42" and message.subject == "Call to 101"
    assert b"\r\n" in message.data
    assert message.data.count(b"\n") == message.data.count(b"\r\n")
    assert max(len(line) for line in message.data.split(b"\r\n")) <= 998


def test_subject_that_is_not_ascii_is_rfc2047_encoded() -> None:
    message = _compose(subject="Zvoní: Alice Nováková – 101")
    raw_subject = message.data.split(b"\r\nSubject: ")[1].split(b"\r\nDate:")[0]
    assert raw_subject.isascii() and b"=?utf-8?" in raw_subject
    assert _parse(message)["Subject"] == "Zvoní: Alice Nováková – 101"


def test_display_name_that_is_not_ascii_is_rfc2047_encoded() -> None:
    settings = _settings()
    settings.device.name = "Vchod „Nádvoří“"
    message = _compose(settings=settings)
    raw_from = message.data.split(b"From: ")[1].split(b"\r\n")[0]
    assert raw_from.isascii() and b"=?utf-8?" in raw_from
    assert _parse(message)["From"].addresses[0].display_name == "Vchod „Nádvoří“"


def test_a_long_ascii_display_name_with_specials_keeps_the_from_address() -> None:
    settings = _settings()
    settings.device.name = "Building A; entrance: courtyard, gate 12"
    parsed = _parse(_compose(settings=settings))
    [author] = parsed["From"].addresses
    assert author.addr_spec == "door@example.com"
    assert author.display_name == settings.device.name


def test_a_given_sender_is_the_author_and_smtp_from_the_sender() -> None:
    message = _compose(sender="reception@example.org")
    parsed = _parse(message)
    assert parsed["From"].addresses[0].addr_spec == "reception@example.org"
    assert parsed["Sender"] == "door@example.com"
    assert message.sender == "door@example.com"


def test_a_long_subject_is_folded_and_reads_back_whole() -> None:
    subject = "Call " + "x" * 3000 + " from Alice"
    message = _compose(subject=subject)
    assert _parse(message)["Subject"] == subject
    assert max(len(line) for line in message.data.split(b"\r\n")) <= 998


def test_body_is_multipart_alternative_with_text_and_html() -> None:
    parsed = _parse(_compose(html_body="<p>Hello <b>Alice</b></p>"))
    assert parsed.get_content_type() == "multipart/alternative"
    types = [part.get_content_type() for part in parsed.iter_parts()]
    assert types == ["text/plain", "text/html"]
    document = _part(parsed, "html")
    assert document.startswith("<!DOCTYPE html>")
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in document
    assert "<p>Hello <b>Alice</b></p>" in document


def test_every_message_ends_with_the_device_and_the_event_as_reference() -> None:
    parsed = _parse(_compose())
    assert _part(parsed, "plain").endswith(FOOTER)
    assert "Reference for your installer: ev-42." in _part(parsed, "html")


def test_text_part_from_html_keeps_links_and_line_breaks() -> None:
    body = (
        '<p>Missed call at <b>Front&nbsp;door</b>.<br>See <a href="https://cam.example/1?a=1&amp;b=2">'
        "the recording</a>.</p><p>Second &amp; last paragraph</p>"
    )
    assert _part(_parse(_compose(html_body=body)), "plain") == (
        "Missed call at Front door.\n"
        "See the recording (https://cam.example/1?a=1&b=2).\n\n"
        "Second & last paragraph\n\n" + FOOTER
    )


def test_text_from_html_writes_lists_as_dashes_and_numbers() -> None:
    html = "<p>Who:</p><ul><li>Alice</li><li>Bob <i>Smith</i></li></ul><ol><li>one</li><li>two</li></ol>"
    assert html_to_text(html) == "Who:\n\n- Alice\n- Bob Smith\n\n1. one\n2. two"


def test_text_from_html_leaves_out_head_style_and_script() -> None:
    html = "<html><head><title>T</title><style>p{color:red}</style></head><body><script>x()</script>Hi</body></html>"
    assert html_to_text(html) == "Hi"


def test_text_from_html_shows_a_link_whose_text_is_its_address_once() -> None:
    assert (
        html_to_text('<a href="https://x.example/">https://x.example/</a>') == "https://x.example/"
    )
    assert html_to_text('<a href="mailto:a@b.example">a@b.example</a>') == "a@b.example"
    assert html_to_text('<a href="https://x.example/"></a>') == "https://x.example/"


def test_text_from_html_collapses_white_space_but_keeps_pre() -> None:
    assert html_to_text("a \n\t b<pre>  x\n  y</pre>c") == "a b\n\n  x\n  y\n\nc"


def test_notes_are_appended_to_both_parts() -> None:
    parsed = _parse(_compose(notes=["The camera did not answer.", "<odd & note>"]))
    assert _part(parsed, "plain").endswith(
        "The camera did not answer.\n\n<odd & note>\n\n" + FOOTER
    )
    assert "The camera did not answer.</p>" in _part(parsed, "html")
    assert "&lt;odd &amp; note&gt;" in _part(parsed, "html")


def test_snapshots_are_named_jpeg_parts_of_a_related_message() -> None:
    images = [na_image(160, 120), na_image(320, 240)]
    parsed = _parse(_compose(snapshots=images))
    assert parsed.get_content_type() == "multipart/related"
    assert parsed.get_param("type") == "multipart/alternative"
    first, *attachments = list(parsed.iter_parts())
    assert first.get_content_type() == "multipart/alternative"
    assert [part.get_filename() for part in attachments] == ["snapshot-1.jpg", "snapshot-2.jpg"]
    assert [part.get_content_type() for part in attachments] == ["image/jpeg", "image/jpeg"]
    assert [part.get_content_disposition() for part in attachments] == ["inline"] * 2
    assert [part.get_content() for part in attachments] == images
    assert [part.get_filename() for part in parsed.iter_attachments()] == [
        "snapshot-1.jpg",
        "snapshot-2.jpg",
    ]
    assert Image.open(io.BytesIO(attachments[1].get_content())).size == (320, 240)


def test_the_html_shows_each_snapshot_through_its_content_id_with_the_time_it_was_taken() -> None:
    images = [na_image(160, 120), na_image(320, 240)]
    taken = [AT, AT.replace(second=7)]
    parsed = _parse(_compose(snapshots=images, html_body="<p>Hello</p>", taken_at=taken))
    html = _part(parsed, "html")
    cids = [str(part["Content-ID"]).strip("<>") for part in list(parsed.iter_parts())[1:]]
    assert [f'src="cid:{cid}"' in html for cid in cids] == [True, True]
    # Europe/Prague is an hour ahead of UTC in January.
    assert 'alt="Snapshot 1 of 2, taken at 2024-01-15 13:30:05"' in html
    assert 'alt="Snapshot 2 of 2, taken at 2024-01-15 13:30:07"' in html
    assert html.index("Hello") < html.index("cid:")  # without $Snapshots$: after the text


def test_snapshots_stand_where_the_placeholder_stood() -> None:
    body = f"<p>Look:</p>{SNAPSHOTS_MARK}<p>Time: now</p>"
    html = _part(_parse(_compose(snapshots=[na_image(160, 120)], html_body=body)), "html")
    assert html.index("Look:") < html.index("cid:") < html.index("Time: now")
    assert SNAPSHOTS_MARK not in html


def test_without_snapshots_the_placeholder_leaves_nothing() -> None:
    body = f"<p>Look:</p>{SNAPSHOTS_MARK}"
    parsed = _parse(_compose(html_body=body))
    assert SNAPSHOTS_MARK not in _part(parsed, "html") and "cid:" not in _part(parsed, "html")
    assert "attached" not in _part(parsed, "plain")


def test_the_text_part_says_how_many_pictures_are_attached() -> None:
    two = _part(_parse(_compose(snapshots=[na_image(160, 120)] * 2)), "plain")
    assert "2 pictures are attached: snapshot-1.jpg, snapshot-2.jpg." in two
    one = _part(_parse(_compose(snapshots=[na_image(160, 120)])), "plain")
    assert "1 picture is attached: snapshot-1.jpg." in one


def test_the_html_sets_no_colours_of_its_own_for_dark_mode() -> None:
    html = _part(_parse(_compose(snapshots=[na_image(160, 120)])), "html")
    assert '<meta name="color-scheme" content="light dark">' in html
    assert "background" not in html and "color:#" not in html


def test_same_input_gives_the_same_bytes_apart_from_message_id() -> None:
    images = [na_image(160, 120)]
    first = _compose(snapshots=images, notes=["n"])
    second = _compose(snapshots=images, notes=["n"])
    assert first.message_id != second.message_id
    assert first.data.replace(first.message_id.encode(), b"") == second.data.replace(
        second.message_id.encode(), b""
    )


def test_different_content_gets_a_different_boundary() -> None:
    first = _parse(_compose(html_body="<p>one</p>"))
    second = _parse(_compose(html_body="<p>two</p>"))
    assert first.get_boundary() != second.get_boundary()


def test_mime_version_only_at_the_top() -> None:
    message = _compose(snapshots=[na_image(160, 120)])
    assert message.data.count(b"MIME-Version:") == 1


def test_snapshots_that_would_exceed_the_message_size_limit_are_reduced_with_a_note() -> None:
    big = _noise_jpeg(240, 180)
    assert 30_000 < len(big) < 60_000
    message = _compose(settings=_settings(max_message_bytes=100_000), snapshots=[big, big, big])
    assert len(message.data) <= 100_000
    parsed = _parse(message)
    attachments = [part.get_content() for part in parsed.iter_attachments()]
    assert attachments and all(len(image) < len(big) for image in attachments)
    assert all(Image.open(io.BytesIO(image)).format == "JPEG" for image in attachments)
    assert "size limit" in _part(parsed, "plain") and "size limit" in _part(parsed, "html")


def test_a_message_never_exceeds_the_size_limit_however_many_snapshots() -> None:
    big = _noise_jpeg(640, 480)
    message = _compose(settings=_settings(max_message_bytes=100_000), snapshots=[big] * 5)
    assert len(message.data) <= 100_000
    assert "size limit" in _part(_parse(message), "plain")


def test_snapshots_within_the_limit_are_all_kept() -> None:
    small = na_image(160, 120)
    parsed = _parse(_compose(snapshots=[small] * 5))
    assert len(list(parsed.iter_attachments())) == 5


def test_html_document_escapes_its_title_and_text_body_ends_with_a_newline() -> None:
    assert "<title>&lt;x&gt;</title>" in html_document("<p>a</p>", title="<x>")
    assert text_body("<p>a</p>") == "a\n"
    assert text_body("", ["only a note"]) == "only a note\n"


def _noise_jpeg(width: int, height: int) -> bytes:
    # Random pixels do not compress, so the JPEG is large for its size.
    image = Image.effect_noise((width, height), 120).convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95)
    return out.getvalue()


@settings(max_examples=150, deadline=None)
@given(
    body=st.text()
    | st.builds(lambda a, b: f"<p>{a}<a href='{b}'>{a}</a><ul><li>{b}", st.text(), st.text())
)
def test_any_html_body_composes_into_a_message_with_both_parts(body: str) -> None:
    parsed = _parse(_compose(html_body=body))
    assert [part.get_content_type() for part in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert _part(parsed, "plain").endswith("\n")


# -- markup read in linear time, as the HTML standard reads it ---------------------------------

# Well-formed pieces: on text made of them html.parser (which reads unclosed markup in
# quadratic time) and the reader agree, so html.parser serves as the reference.
WELL_FORMED = st.lists(
    st.sampled_from(
        [
            *("<p>", "</p>", "<P class=x>", "<br>", "<br/>", "<hr>", "<pre>", "</pre>", "<div>"),
            *("</div>", "<ul>", "<ol start='3'>", "<li>", "</li>", "</ul>", "</ol>", "<td>"),
            *("<a href='https://x.example/?a=1&amp;b=2'>", '<a href="mailto:a@b.example">', "</a>"),
            *("<a title='>' href=\"u\">", "<img src=x alt='A &amp; B'>", '<img alt="pic"/>'),
            *("<!-- note -->", "<!DOCTYPE html>", "<?xml x?>", "<script>if (a<b) x='</p>'"),
            *("</script>", "<style>p > b {}</style>", "<title>T</title>", "< ", "a < b"),
            *("&amp;", "&lt;", "&#39;", "&nbsp;", "&copy", "x", "Word", " ", "\n", "\t"),
        ]
    ),
    max_size=25,
).map("".join)


class ReadByHtmlParser(htmltext._TextWriter, HTMLParser):
    def __init__(self) -> None:
        htmltext._TextWriter.__init__(self)
        HTMLParser.__init__(self, convert_charrefs=True)


@settings(max_examples=1500, deadline=None)
@given(html=WELL_FORMED)
def test_text_from_well_formed_html_is_as_python_html_parser_reads_it(html: str) -> None:
    reference = ReadByHtmlParser()
    reference.feed(html)
    reference.close()
    assert html_to_text(html) == reference.text()


def test_text_from_html_leaves_out_what_the_html_standard_takes_for_comments() -> None:
    # Python's html.parser stops with an AssertionError at `<![` not followed by a name.
    assert html_to_text("<p>a <![ b ]]> c</p>") == "a c"
    assert html_to_text("<![<![x") == ""
    assert html_to_text("a <!-- b <p>c</p> --> d <!--> e <!---> f") == "a d e f"
    assert html_to_text("a </ b> c </> d") == "a c d"


def test_text_from_html_ends_where_the_text_ends_within_markup() -> None:
    assert html_to_text("<p>a < b and c <d e") == "a < b and c"
    assert html_to_text("x <!-- never closed <p>y</p>") == "x"
    assert html_to_text("<p>x <a href='y>z</a>") == "x"
    assert html_to_text("<p>x</p><script>never closed <p>y</p>") == "x"


def test_text_from_deeply_nested_lists_is_indented_eight_levels_at_most() -> None:
    html = "<ul><li>x" * 10 + "<ol><li>y" * 1000
    lines = html_to_text(html).splitlines()
    assert lines[:2] == ["- x", "  - x"]
    assert lines[-1] == "  " * 7 + "1. y"
    assert max(len(line) for line in lines) == 2 * 7 + 4


@pytest.mark.parametrize(
    "unit",
    [
        "<ol><li>",
        "<a\n",
        "<a/",
        '<a x="',
        "<!--x>",
        "'<a href='</script>",
        "<![",
        "</a x",
        "<?",
        "<",
    ],
)
def test_text_from_64_kb_of_repeated_unclosed_markup_is_made(unit: str) -> None:
    # Each of these took html.parser from seconds to nearly a minute; the time is measured by
    # `make bench`.
    html = "<p>start</p>" + unit * (64 * 1024 // len(unit))
    assert html_to_text(html).startswith("start")


@settings(max_examples=1000, deadline=None)
@given(html=st.text(alphabet="<>!-[]?/ab =\"'&;\n", max_size=60))
def test_text_from_any_markup_is_made_without_an_error(html: str) -> None:
    assert isinstance(html_to_text(html), str)
