"""Templates (SPEC section 5): placeholders, the extended syntax, escaping, and hostile values."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doormail import templates
from doormail.compose import compose
from doormail.placeholders import PLACEHOLDERS
from doormail.settings import DEFAULT_ACCESS_BODY, DEFAULT_ACCESS_SUBJECT, Settings
from doormail.templates import header_safe, render

ACCESS = {
    "User": "Alice Novak",
    "DateTime": "2024-05-17 14:03:27",
    "DialNumber": "101",
    "DeviceName": "Front door",
    "AuthId": "0012AB34CD",
    "AuthIdType": "Card",
    "AuthIdValid": "Valid",
    "CallState": "Missed",
}


NAMES = [placeholder.name for placeholder in PLACEHOLDERS if not placeholder.markup]


@pytest.mark.parametrize("name", NAMES)
def test_each_placeholder_is_replaced_by_its_value(name: str) -> None:
    assert render(f"[${name}$]", ACCESS, html=False) == f"[{ACCESS[name]}]"
    assert render(f"<p>${name}$</p>", ACCESS, html=True) == f"<p>{ACCESS[name]}</p>"


def test_every_placeholder_in_one_template() -> None:
    template = " ".join(f"${name}$" for name in NAMES)
    assert render(template, ACCESS, html=False) == " ".join(ACCESS[n] for n in NAMES)


def test_the_call_state_in_words_with_the_extended_syntax() -> None:
    template = "$CallState:Missed=Missed call,Answered=Call$ at $DeviceName$"
    assert render(template, ACCESS, html=False) == "Missed call at Front door"
    answered = {**ACCESS, "CallState": "Answered"}
    assert render(template, answered, html=False) == "Call at Front door"


def test_the_snapshots_placeholder_is_markup_in_a_body_and_nothing_in_a_subject() -> None:
    markup = {"Snapshots": "<!--pictures-->"}
    body = "<p>$User$</p>$Snapshots$"
    assert render(body, ACCESS, html=True, markup=markup) == "<p>Alice Novak</p><!--pictures-->"
    assert render("$Snapshots$Hi $User$", ACCESS, html=False, markup=markup) == "Hi Alice Novak"
    # A value that holds the markup is escaped as any value is.
    named = {**ACCESS, "User": "<!--pictures-->"}
    assert render("$User$", named, html=True, markup=markup) == "&lt;!--pictures--&gt;"


def test_extended_syntax_replaces_the_value_by_its_text() -> None:
    template = "$AuthIdValid:Valid=platný,Invalid=neplatný$"
    assert render(template, ACCESS, html=False) == "platný"
    assert render(template, {**ACCESS, "AuthIdValid": "Invalid"}, html=False) == "neplatný"


def test_extended_syntax_looks_the_value_up_case_insensitively() -> None:
    template = "$AuthIdType:CARD=karta,bluetooth=Bluetooth,Fingerprint=otisk$"
    assert render(template, ACCESS, html=False) == "karta"
    assert render(template, {**ACCESS, "AuthIdType": "FINGERPRINT"}, html=False) == "otisk"


def test_extended_syntax_ignores_spaces_around_the_values() -> None:
    assert render("$AuthIdValid:Invalid=ne, Valid=ano$", ACCESS, html=False) == "ano"


def test_extended_syntax_uses_a_value_not_in_the_list_directly() -> None:
    assert render("$AuthIdType:Bluetooth=BT$", ACCESS, html=False) == "Card"


def test_extended_syntax_works_for_any_placeholder() -> None:
    assert render("$User:Alice Novak=Mrs Novak$", ACCESS, html=False) == "Mrs Novak"
    assert render("$DialNumber:101=reception$", ACCESS, html=False) == "reception"
    assert render("$DeviceName:front door=Vchod$", ACCESS, html=False) == "Vchod"


def test_extended_syntax_escapes_comma_and_equals_sign() -> None:
    template = r"$AuthIdValid:Valid=yes\, welcome,Invalid=a\=b$"
    assert render(template, ACCESS, html=False) == "yes, welcome"
    assert render(template, {**ACCESS, "AuthIdValid": "Invalid"}, html=False) == "a=b"


def test_extended_syntax_matches_an_escaped_value() -> None:
    values = {**ACCESS, "User": "Novak, Alice"}
    assert render(r"$User:Novak\, Alice=Alice$", values, html=False) == "Alice"
    values = {**ACCESS, "AuthId": "a=b"}
    assert render(r"$AuthId:a\=b=matched$", values, html=False) == "matched"


def test_extended_syntax_text_is_the_templates_own_html() -> None:
    template = "$AuthIdValid:Valid=<b>granted</b>,Invalid=<b>denied</b>$"
    assert render(template, ACCESS, html=True) == "<b>granted</b>"


def test_placeholder_unknown_for_the_kind_of_mail_stays_as_written() -> None:
    call = {"User": "Alice", "DateTime": "now", "DialNumber": "101", "DeviceName": "door"}
    template = "$AuthId$ $AuthIdValid:Valid=ok,Invalid=no$ $Nonsense$ $DialNumber$"
    assert (
        render(template, call, html=True)
        == "$AuthId$ $AuthIdValid:Valid=ok,Invalid=no$ $Nonsense$ 101"
    )


def test_dollar_signs_that_are_no_placeholder_stay() -> None:
    assert (
        render("costs $5, $ $$User$ $User", ACCESS, html=False) == "costs $5, $ $Alice Novak $User"
    )
    assert render("$Price$User$", ACCESS, html=False) == "$PriceAlice Novak"


def test_values_are_html_escaped_in_the_body() -> None:
    values = {"User": "<script>alert('x')</script> & \"Bob\""}
    assert render("<p>$User$</p>", values, html=True) == (
        "<p>&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;Bob&quot;</p>"
    )


def test_values_are_not_escaped_in_a_subject() -> None:
    assert render("$User$", {"User": "Tom & Jerry <x>"}, html=False) == "Tom & Jerry <x>"


def test_cr_and_lf_never_reach_a_subject() -> None:
    values = {"User": "Alice\r\nBcc: x@evil.example\u2028\x00\x85end"}
    rendered = render("Call for $User$", values, html=False)
    assert rendered == "Call for Alice Bcc: x@evil.example end"
    assert rendered.splitlines() == [rendered]


def test_a_subject_template_with_a_line_break_is_flattened() -> None:
    assert render("one\r\ntwo\tthree", {}, html=False) == "one two three"


def test_a_value_holding_a_placeholder_is_not_expanded_again() -> None:
    values = {**ACCESS, "User": "$DeviceName$ $AuthId$"}
    assert (
        render("$User$ at $DeviceName$", values, html=False)
        == "$DeviceName$ $AuthId$ at Front door"
    )


def test_a_lone_surrogate_becomes_a_replacement_character() -> None:
    assert render("$User$", {"User": "a\ud800b"}, html=True) == "a\ufffdb"
    assert render("$User$", {"User": "a\ud800b"}, html=False) == "a\ufffdb"


# -- the placeholder syntax, parsed in linear time ------------------------------------------

# The syntax of SPEC section 5 as one regular expression. Tried at every `$` it finds the same
# placeholders as `render`, but takes quadratic time on texts such as `$A:` + `\$A:` * n, so it
# serves here as the definition that `render` is checked against, on short texts.
DEFINITION = re.compile(r"\$([A-Za-z][A-Za-z0-9_]*)(?::((?:\\.|[^$\\])*))?\$", re.DOTALL)


def render_by_definition(template: str, values: dict[str, str]) -> str:
    out: list[str] = []
    position = 0
    while (start := template.find("$", position)) >= 0:
        out.append(template[position:start])
        match = DEFINITION.match(template, start)
        if match is None or match.group(1) not in values:
            out.append("$")
            position = start + 1
            continue
        out.append(templates._substitute(values[match.group(1)], match.group(2), html=False))
        position = match.end()
    out.append(template[position:])
    return header_safe("".join(out))


PIECES = st.sampled_from(
    ["$", "\\", ":", ",", "=", "$User", "$User:", "$A:", "$Us", "\\$", "\\\\", "Alice", "x"]
)


@settings(max_examples=1500, deadline=None)
@given(pieces=st.lists(PIECES, max_size=30))
def test_placeholders_are_found_exactly_as_the_syntax_defines(pieces: list[str]) -> None:
    template = "".join(pieces)
    values = {"User": "Alice", "A": "a=b"}
    assert render(template, values, html=False) == render_by_definition(template, values)


@pytest.mark.parametrize(
    "template",
    [
        "$A:" + "\\$A:" * 1000,
        "$User:" + "\\$User:" * 1000,
        "\\$User:" * 1000,
        "$User:x=y" + "\\$DeviceName" * 1000,
        "$User:" + "\\$" * 1000 + "\\",
    ],
)
def test_extended_placeholder_without_its_closing_dollar_stays_as_written(template: str) -> None:
    assert render(template, ACCESS, html=False) == template


def test_extended_placeholder_closed_after_many_escaped_dollars_is_replaced() -> None:
    template = "$User:" + "\\$User:" * 1000 + "$ at $DeviceName$"
    assert render(template, ACCESS, html=False) == "Alice Novak at Front door"
    template = "$User:Alice Novak=" + "\\$" * 1000 + "$"
    assert render(template, ACCESS, html=False) == "$" * 1000


def test_placeholders_after_an_unknown_one_with_pairs_are_still_replaced() -> None:
    # Only a known name's pairs are looked at: an unknown one's `:` does not hide what follows.
    template = "$Price:a=b $User$ $Nope:x\\$ $DeviceName$"
    assert render(template, ACCESS, html=False) == "$Price:a=b Alice Novak $Nope:x\\$ Front door"


# -- hostile values, any of them -------------------------------------------------------------

HOSTILE = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec=None), max_size=50),
    st.sampled_from(
        [
            "<script>alert(1)</script>",
            "\r\nBcc: x@evil.example",
            "\nBcc: x@evil.example\n",
            "$User$",
            "$DeviceName$$User$",
            "=?utf-8?q?=0D=0ABcc:_x@evil.example?=",
            "\u2028X-Injected: 1",
            "x" * 10_000,
            "\ud800",
        ]
    ),
    st.builds(lambda a, b: a + "\r\nBcc: x@evil.example\r\n" + b, st.text(), st.text()),
)

SETTINGS = Settings.model_validate(
    {"smtp": {"from": "door@example.com"}, "device": {"timezone": "Europe/Prague"}}
)
EXPECTED_HEADERS = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Auto-Submitted",
    "X-Doormail-Event",
    "MIME-Version",
    "Content-Type",
]


def _access_values(user: str, card: str) -> dict[str, str]:
    return {**ACCESS, "User": user, "AuthId": card}


@settings(max_examples=200, deadline=None)
@given(user=HOSTILE, card=HOSTILE)
def test_any_user_name_or_card_id_renders_escaped_and_never_expands_twice(
    user: str, card: str
) -> None:
    values = _access_values(user, card)
    body = render("<p>$User$|$AuthId$</p>", values, html=True)
    inner = body.removeprefix("<p>").removesuffix("</p>")
    assert "<" not in inner and ">" not in inner and '"' not in inner
    # What a value brings in is never taken for a placeholder: the escaped text equals the
    # values themselves (with nothing but control characters removed).
    assert inner.count("$") == user.count("$") + card.count("$")
    subject = render("$User$ $AuthId$", values, html=False)
    assert subject.splitlines() == [subject] and "\r" not in subject and "\n" not in subject


@settings(max_examples=200, deadline=None)
@given(user=HOSTILE, card=HOSTILE, device_name=HOSTILE)
def test_any_user_name_or_card_id_never_adds_a_header(
    user: str, card: str, device_name: str
) -> None:
    values = _access_values(user, card)
    settings = SETTINGS.model_copy(deep=True)
    settings.device.name = device_name.replace("\r", "").replace("\n", "")
    subject = render(DEFAULT_ACCESS_SUBJECT + " $User$", values, html=False)
    message = compose(
        settings=settings,
        event_id="ev-" + card[:40],
        kind="access",
        recipient="alice@example.com",
        subject=subject,
        html_body=render(DEFAULT_ACCESS_BODY, values, html=True),
        snapshots=[],
        at=datetime(2024, 5, 17, 12, 3, 27, tzinfo=UTC),
    )
    parsed = email.message_from_bytes(message.data, policy=email.policy.default)
    assert list(parsed.keys()) == EXPECTED_HEADERS
    assert parsed["To"] == "alice@example.com"
    assert parsed["From"].addresses[0].addr_spec == "door@example.com"
    # Python's address parser keeps the folding space between two encoded words of a phrase
    # (RFC 2047 6.2 says to drop it), so the name is compared without its white space.
    shown = parsed["From"].addresses[0].display_name
    assert "".join(shown.split()) == "".join(header_safe(settings.device.name).split())
    assert parsed["Subject"] == subject == message.subject
    assert parsed["X-Doormail-Event"] == header_safe("ev-" + card[:40])
    assert message.data.count(b"\r\n") == message.data.count(b"\n") == message.data.count(b"\r")
    html_part = parsed.get_body(("html",))
    assert html_part is not None
    assert "<script>" not in html_part.get_content()
