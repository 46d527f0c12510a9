"""The manual's rules, one test per sentence: who gets which mail for a call, an access and a
device event, with which placeholder values, and why there is no mail when there is none."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from doormail import rules
from doormail.events import parse_event
from doormail.settings import Settings, merge
from doormail.users.model import User, UserLookup
from tests.users.memory import UsersInMemory

AT = "2025-03-14T09:26:53+00:00"
USERS = (
    User(
        id="u-alice",
        name="Alice Novak",
        email="alice@example.com",
        numbers=("101",),
        cards=("0012AB34CD",),
        bluetooth=("bt-alice",),
        fingerprints=("fp-alice",),
    ),
    User(
        id="u-bob",
        name="Bob Marek",
        email="bob@example.com, bob@work.example",
        numbers=("102",),
        cards=("00BB0B0B0B",),
    ),
    User(
        id="u-carol",
        name="Carol Svoboda",
        numbers=("103",),
        cards=("00CAFE0001",),
        fingerprints=("fp-carol",),
    ),
    # Erin shares Alice's address (a family mailbox).
    User(id="u-erin", name="Erin Novak", email="ALICE@example.com", numbers=("105",)),
)
CONFIG: dict[str, Any] = {
    "device": {"name": "Front door"},
    "smtp": {"enabled": True, "server": "127.0.0.1", "from": "door@example.org"},
    "email_on_call": {"send": "any", "default_to": "desk@example.com"},
    "email_on_access": {"send": "all", "default_to": "security@example.com"},
    "email_on_event": {
        "to": "admin@example.com",
        "sip_registration_lost": {"enabled": True},
        "device_rebooted": {"enabled": True},
        "tamper": {"enabled": True},
    },
}


@pytest.fixture(scope="module")
def users() -> UserLookup:
    return UsersInMemory(USERS)


def settings(**changes: Any) -> Settings:
    """The test configuration with `changes` (section__key=value) merged in."""
    patch: dict[str, Any] = {}
    for path, value in changes.items():
        node = patch
        *parents, last = path.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return Settings.model_validate(merge(merge(Settings().document(), CONFIG), patch))


def decide(
    users: UserLookup, event: Mapping[str, Any], config: Settings | None = None, **kw: Any
) -> rules.Decision:
    return rules.decide(
        parse_event({"at": AT, **event}), config or settings(), users, ringing_at=kw.get("ringing")
    )


def to(decision: rules.Decision) -> list[str]:
    return [mail.recipient for mail in decision.mails]


def missed(*called: str, **fields: Any) -> dict[str, Any]:
    return {"type": "call.ended", "called": list(called), "answered": False, **fields}


def access(auth_id: str, auth_type: str = "card", **fields: Any) -> dict[str, Any]:
    return {"type": "access", "auth_type": auth_type, "auth_id": auth_id, **fields}


# --- SMTP Service Enabled --------------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        missed("101"),
        access("0012AB34CD"),
        {"type": "sip.registration_lost"},
        {"type": "device.rebooted"},
        {"type": "tamper.activated"},
    ],
)
def test_smtp_service_disabled_sends_no_mail(users: UserLookup, event: dict[str, Any]) -> None:
    decision = decide(users, event, settings(smtp__enabled=False))
    assert (decision.mails, decision.reason) == ((), "smtp.enabled is false")


# --- E-Mail on Call --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("send", "answered", "reason"),
    [
        ("never", False, "email_on_call.send is never"),
        ("never", True, "email_on_call.send is never"),
        ("any", False, None),
        ("any", True, None),
        ("missed", False, None),
        ("missed", True, "email_on_call.send is missed and the call was answered"),
    ],
)
def test_send_email_to_user_at_any_or_missed_outgoing_call(
    users: UserLookup, send: str, answered: bool, reason: str | None
) -> None:
    event = missed("101", answered=answered)
    decision = decide(users, event, settings(email_on_call__send=send))
    assert decision.reason == reason
    assert to(decision) == ([] if reason else ["alice@example.com"])


def test_only_outgoing_calls_send_mail(users: UserLookup) -> None:
    decision = decide(users, missed("101", direction="incoming"))
    assert (decision.mails, decision.reason) == ((), "only outgoing calls send mail")


def test_call_ringing_sends_no_mail_the_mail_is_sent_when_the_call_ends(users: UserLookup) -> None:
    ringing = {"type": "call.ringing", "call_id": "c-1", "called": "101"}
    assert decide(users, ringing).reason == (
        "call.ringing does not send mail; the mail is sent when the call ends"
    )


@pytest.mark.parametrize(
    ("called", "expected"),
    [
        (["101"], ["alice@example.com"]),  # by number
        (["u-alice"], ["alice@example.com"]),  # by user id
        (["102"], ["bob@example.com", "bob@work.example"]),  # every address of the user
        (["101", "102"], ["alice@example.com", "bob@example.com", "bob@work.example"]),
    ],
)
def test_each_called_user_with_an_email_gets_the_mail(
    users: UserLookup, called: list[str], expected: list[str]
) -> None:
    assert to(decide(users, missed(*called))) == expected


def test_missed_call_to_user_without_email_goes_to_default_to(users: UserLookup) -> None:
    decision = decide(users, missed("103"))
    assert to(decision) == ["desk@example.com"]
    assert decision.mails[0].values["User"] == "Carol Svoboda"


def test_call_to_number_not_in_users_list_goes_to_default_to(users: UserLookup) -> None:
    decision = decide(users, missed("999"))
    assert to(decision) == ["desk@example.com"]
    assert decision.mails[0].values["User"] == ""
    assert decision.mails[0].values["DialNumber"] == "999"


def test_default_to_gets_the_mail_once_per_event(users: UserLookup) -> None:
    decision = decide(users, missed("101", "103", "998", "999"))
    assert to(decision) == ["alice@example.com", "desk@example.com"]
    assert decision.mails[1].values["DialNumber"] == "103, 998, 999"


def test_default_to_may_hold_several_addresses_separated_with_a_comma(users: UserLookup) -> None:
    config = settings(email_on_call__default_to="desk@example.com, night@example.com")
    assert to(decide(users, missed("999"), config)) == ["desk@example.com", "night@example.com"]


@pytest.mark.parametrize("called", [["999"], ["103"], ["103", "999"]])
def test_no_recipient_no_mail(users: UserLookup, called: list[str]) -> None:
    decision = decide(users, missed(*called), settings(email_on_call__default_to=""))
    assert decision == rules.Decision((), "no recipient")


def test_user_is_the_called_users_name(users: UserLookup) -> None:
    values = decide(users, missed("101")).mails[0].values
    assert values == {
        "User": "Alice Novak",
        "DateTime": "2025-03-14 09:26:53",
        "DialNumber": "101",
        "DeviceName": "Front door",
        "CallState": "Missed",
    }


def test_call_to_several_users_leaves_user_empty(users: UserLookup) -> None:
    decision = decide(users, missed("101", "102", "103"))
    assert {mail.values["User"] for mail in decision.mails} == {""}
    assert len(decision.mails) == 4  # Alice, Bob twice, Default To for Carol


def test_dial_number_of_a_call_to_a_user_id_is_the_users_number(users: UserLookup) -> None:
    assert decide(users, missed("u-bob")).mails[0].values["DialNumber"] == "102"


@pytest.mark.parametrize(
    ("ringing", "started_at", "span"),
    [
        (1741944400.0, None, (1741944400.0, 1741944413.0)),  # from its ringing
        (None, "2025-03-14T09:26:43+00:00", (1741944403.0, 1741944413.0)),  # or its started_at
        (None, None, (1741944413.0, 1741944413.0)),  # or its end alone
    ],
)
def test_call_snapshots_are_taken_from_ringing_to_end_of_call(
    users: UserLookup, ringing: float | None, started_at: str | None, span: tuple[float, float]
) -> None:
    fields = {"started_at": started_at} if started_at else {}
    event = missed("101", at="2025-03-14T09:26:53+00:00", **fields)
    config = settings(
        email_on_call__snapshots={"attach": True, "count": 3, "resolution": "320x240"}
    )
    mail = decide(users, event, config, ringing=ringing).mails[0]
    assert mail.span == span
    assert (mail.snapshots.attach, mail.snapshots.count, mail.snapshots.resolution) == (
        True,
        3,
        "320x240",
    )


def test_call_mail_uses_the_email_on_call_templates(users: UserLookup) -> None:
    config = settings(
        email_on_call__subject="Call $DialNumber$", email_on_call__body="<p>$User$</p>"
    )
    mail = decide(users, missed("101"), config).mails[0]
    assert (mail.kind, mail.subject_template, mail.body_template) == (
        "call",
        "Call $DialNumber$",
        "<p>$User$</p>",
    )


# --- E-Mail on Access ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("send", "auth_id", "expected"),
    [
        ("never", "0012AB34CD", "email_on_access.send is never"),
        ("never", "FFFFFFFFFF", "email_on_access.send is never"),
        ("all", "0012AB34CD", None),
        ("all", "FFFFFFFFFF", None),
        ("denied", "0012AB34CD", "email_on_access.send is denied and the access was valid"),
        ("denied", "FFFFFFFFFF", None),
    ],
)
def test_send_email_at_all_or_denied_accesses(
    users: UserLookup, send: str, auth_id: str, expected: str | None
) -> None:
    decision = decide(users, access(auth_id), settings(email_on_access__send=send))
    assert decision.reason == expected
    assert bool(decision.mails) is (expected is None)


@pytest.mark.parametrize(
    ("auth_type", "auth_id"),
    [
        ("card", "0012AB34CD"),
        ("card", "12ab34cd"),  # a Wiegand reader's shortened ID
        ("bluetooth", "bt-alice"),
        ("fingerprint", "fp-alice"),
    ],
)
def test_access_with_valid_identifier_of_user_with_email_goes_to_that_user(
    users: UserLookup, auth_type: str, auth_id: str
) -> None:
    decision = decide(users, access(auth_id, auth_type))
    assert to(decision) == ["alice@example.com"]
    values = decision.mails[0].values
    assert (values["User"], values["AuthIdValid"]) == ("Alice Novak", "Valid")


def test_access_with_invalid_card_goes_to_default_to(users: UserLookup) -> None:
    decision = decide(users, access("FFFFFFFFFF"))
    assert to(decision) == ["security@example.com"]
    assert decision.mails[0].values["AuthIdValid"] == "Invalid"
    assert decision.mails[0].values["User"] == ""


def test_access_by_user_without_email_goes_to_default_to(users: UserLookup) -> None:
    decision = decide(users, access("fp-carol", "fingerprint"))
    assert to(decision) == ["security@example.com"]
    assert decision.mails[0].values["User"] == "Carol Svoboda"


def test_access_denied_to_a_known_user_goes_to_default_to(users: UserLookup) -> None:
    decision = decide(users, access("0012AB34CD", valid=False))
    assert to(decision) == ["security@example.com"]
    values = decision.mails[0].values
    assert (values["User"], values["AuthIdValid"]) == ("Alice Novak", "Invalid")


def test_access_validity_and_user_come_from_the_event_when_given(users: UserLookup) -> None:
    decision = decide(users, access("unknown-tag", "bluetooth", valid=True, user="u-bob"))
    assert to(decision) == ["bob@example.com", "bob@work.example"]
    assert decision.mails[0].values["User"] == "Bob Marek"


def test_a_denied_access_is_marked_denied_for_flood_control(users: UserLookup) -> None:
    assert decide(users, access("FFFFFFFFFF")).denied
    assert not decide(users, access("unknown-tag", "bluetooth", valid=True, user="u-bob")).denied


def test_access_no_recipient_no_mail(users: UserLookup) -> None:
    decision = decide(users, access("FFFFFFFFFF"), settings(email_on_access__default_to=""))
    assert decision == rules.Decision((), "no recipient", denied=True)


@pytest.mark.parametrize(
    ("auth_type", "auth_id", "auth_id_type", "valid"),
    [
        ("card", "0012AB34CD", "Card", "Valid"),
        ("bluetooth", "bt-nobody", "Bluetooth", "Invalid"),
        ("fingerprint", "fp-alice", "Fingerprint", "Valid"),
    ],
)
def test_access_placeholders_name_the_identifier_its_type_and_validity(
    users: UserLookup, auth_type: str, auth_id: str, auth_id_type: str, valid: str
) -> None:
    values = decide(users, access(auth_id, auth_type)).mails[0].values
    assert set(values) == {"User", "DateTime", "AuthId", "DeviceName", "AuthIdType", "AuthIdValid"}
    assert (values["AuthId"], values["AuthIdType"], values["AuthIdValid"]) == (
        auth_id,
        auth_id_type,
        valid,
    )


def test_access_snapshots_are_taken_at_its_moment(users: UserLookup) -> None:
    mail = decide(users, access("0012AB34CD")).mails[0]
    assert mail.span == (1741944413.0, 1741944413.0)
    assert mail.kind == "access"


# --- E-Mail on Event -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "kind"),
    [
        ("sip.registration_lost", "sip_registration_lost"),
        ("device.rebooted", "device_rebooted"),
        ("tamper.activated", "tamper"),
    ],
)
def test_each_enabled_device_event_sends_to_the_send_to_email_address(
    users: UserLookup, event_type: str, kind: str
) -> None:
    config = settings(email_on_event__to="admin@example.com, facility@example.com")
    decision = decide(users, {"type": event_type}, config)
    assert to(decision) == ["admin@example.com", "facility@example.com"]
    mail = decision.mails[0]
    message = getattr(config.email_on_event, kind)
    assert (mail.kind, mail.subject_template, mail.body_template) == (
        kind,
        message.subject,
        message.body,
    )
    assert mail.values == {
        "User": "",
        "DateTime": "2025-03-14 09:26:53",
        "DeviceName": "Front door",
    }
    assert mail.span == (1741944413.0, 1741944413.0)


@pytest.mark.parametrize(
    ("event_type", "kind"),
    [
        ("sip.registration_lost", "sip_registration_lost"),
        ("device.rebooted", "device_rebooted"),
        ("tamper.activated", "tamper"),
    ],
)
def test_a_device_event_that_is_not_enabled_sends_no_mail(
    users: UserLookup, event_type: str, kind: str
) -> None:
    config = settings(**{f"email_on_event__{kind}__enabled": False})
    decision = decide(users, {"type": event_type}, config)
    assert (decision.mails, decision.reason) == ((), f"email_on_event.{kind}.enabled is false")


def test_device_event_without_address_sends_no_mail(users: UserLookup) -> None:
    decision = decide(users, {"type": "tamper.activated"}, settings(email_on_event__to=""))
    assert decision == rules.Decision((), "no recipient")


# --- Every kind of mail ----------------------------------------------------------------------


def test_one_message_per_recipient_address(users: UserLookup) -> None:
    # Alice and Erin share a mailbox (in another case); Default To repeats Bob's address.
    config = settings(email_on_call__default_to="bob@example.com, desk@example.com")
    decision = decide(users, missed("101", "105", "102", "999"), config)
    assert to(decision) == [
        "alice@example.com",
        "bob@example.com",
        "bob@work.example",
        "desk@example.com",
    ]


def test_device_name_is_the_events_device_or_the_device_name(users: UserLookup) -> None:
    assert decide(users, missed("101")).mails[0].values["DeviceName"] == "Front door"
    mail = decide(users, missed("101", device="Garage gate")).mails[0]
    assert mail.values["DeviceName"] == "Garage gate"


def test_date_time_is_the_events_time_in_the_device_time_zone(users: UserLookup) -> None:
    config = settings(device__timezone="Europe/Prague", device__datetime_format="%d.%m.%Y %H:%M")
    mail = decide(users, missed("101"), config).mails[0]
    assert mail.values["DateTime"] == "14.03.2025 10:26"


def test_an_event_without_a_time_happened_now(users: UserLookup) -> None:
    before = datetime.now(UTC).timestamp()
    event = parse_event({"type": "tamper.activated"})
    mail = rules.decide(event, settings(), users).mails[0]
    assert before <= mail.span[0] <= datetime.now(UTC).timestamp()


def test_an_event_concerns_the_addresses_it_mails(users: UserLookup) -> None:
    decision = decide(users, missed("101"))
    assert decision.concerned == tuple(to(decision)) == ("alice@example.com",)


def test_an_event_without_mail_concerns_those_it_would_have_reached(users: UserLookup) -> None:
    answered = decide(users, missed("101", answered=True), settings(email_on_call__send="missed"))
    assert answered.mails == () and answered.concerned == ("alice@example.com",)
    disabled = decide(users, missed("101"), settings(smtp__enabled=False))
    assert disabled.concerned == ("alice@example.com",)
    denied_only = decide(users, access("0012AB34CD"), settings(email_on_access__send="denied"))
    assert denied_only.mails == () and denied_only.concerned != ()
