"""The placeholder table (SPEC section 5): every placeholder the manual lists for a kind of mail,
the value each gives for each kind, the preview's samples, and the saved templates of a kind.
Pure: no database, no server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from doormail import placeholders
from doormail.events import Access, CallEnded, parse_event
from doormail.placeholders import (
    DEVICE_EVENT_KINDS,
    KINDS,
    MARKUP,
    PLACEHOLDERS,
    SNAPSHOTS_MARK,
    Context,
    Kind,
    datetime_value,
    for_kind,
    preview_values,
    templates_for,
    values,
)
from doormail.settings import DEFAULT_ACCESS_BODY, DEFAULT_ACCESS_SUBJECT, Device, Settings
from doormail.templates import render
from doormail.users.model import User

# The manual's tables of substitute symbols, tab by tab.
MANUAL: dict[Kind, tuple[str, ...]] = {
    "call": ("User", "DateTime", "DialNumber", "DeviceName"),
    "access": ("User", "DateTime", "AuthId", "DeviceName", "AuthIdType", "AuthIdValid"),
    "sip_registration_lost": ("User", "DateTime", "DeviceName"),
    "device_rebooted": ("User", "DateTime", "DeviceName"),
    "tamper": ("User", "DateTime", "DeviceName"),
}
AT = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
SETTINGS = Settings.model_validate({"device": {"name": "Front door"}})
ALICE = User(id="u-alice", name="Alice Novak", email="alice@example.com", numbers=("101",))
BOB = User(id="u-bob", name="Bob Marek", email="bob@example.com", numbers=("102", "112"))
CAROL = User(id="u-carol", name="Carol Svoboda", numbers=("103",))


def names(kind: Kind) -> tuple[str, ...]:
    """The placeholders of a kind that stand for a value (not for markup, like `$Snapshots$`)."""
    return tuple(placeholder.name for placeholder in for_kind(kind) if not placeholder.markup)


def call(*called: str, device: str | None = None) -> CallEnded:
    event = parse_event({"type": "call.ended", "called": list(called), "answered": False})
    assert isinstance(event, CallEnded)
    return event.model_copy(update={"at": AT, "device": device})


def access(auth_id: str, auth_type: str = "card", user: str | None = None) -> Access:
    raw = {"type": "access", "auth_type": auth_type, "auth_id": auth_id, "user": user}
    event = parse_event({key: value for key, value in raw.items() if value is not None})
    assert isinstance(event, Access)
    return event.model_copy(update={"at": AT})


# --- the manual's tables ------------------------------------------------------------------


@pytest.mark.parametrize("kind", MANUAL)
def test_every_placeholder_the_manual_lists_for_a_kind_is_in_the_table(kind: Kind) -> None:
    assert set(MANUAL[kind]) <= set(names(kind))


@pytest.mark.parametrize("kind", MANUAL)
def test_a_placeholder_the_manual_does_not_list_is_marked_beyond_the_manual(kind: Kind) -> None:
    for placeholder in for_kind(kind):
        assert placeholder.beyond_manual is (placeholder.name not in MANUAL[kind])


@pytest.mark.parametrize("kind", MANUAL)
def test_the_table_keeps_the_manuals_order(kind: Kind) -> None:
    manual = [name for name in names(kind) if name in MANUAL[kind]]
    assert manual == list(MANUAL[kind])


def test_each_placeholder_is_in_the_table_once() -> None:
    listed = [placeholder.name for placeholder in PLACEHOLDERS]
    assert len(listed) == len(set(listed))


def test_the_user_of_a_call_is_described_as_the_manual_does() -> None:
    user = next(placeholder for placeholder in PLACEHOLDERS if placeholder.name == "User")
    assert user.token == "$User$"
    assert user.description_for("access") == "Called username"
    assert "several users" in user.description_for("call")


# --- E-Mail on Call -----------------------------------------------------------------------


def test_a_call_to_one_user_names_the_user_the_number_the_time_and_the_device() -> None:
    context = Context("call", SETTINGS, AT, call("101"), called=(("101", ALICE),))
    assert values(context) == {
        "User": "Alice Novak",
        "DateTime": "2025-03-14 09:26:53",
        "DialNumber": "101",
        "DeviceName": "Front door",
        "CallState": "Missed",
    }


def test_the_call_state_says_whether_the_call_was_answered() -> None:
    answered = call("101").model_copy(update={"answered": True})
    context = Context("call", SETTINGS, AT, answered, called=(("101", ALICE),))
    assert values(context)["CallState"] == "Answered"


def test_a_call_to_several_users_at_once_leaves_the_user_empty() -> None:
    event = call("101", "102")
    context = Context("call", SETTINGS, AT, event, called=(("101", ALICE),), several=True)
    assert values(context)["User"] == ""


def test_a_call_to_numbers_not_in_the_users_list_names_no_user_and_every_number() -> None:
    called = (("998", None), ("999", None))
    context = Context("call", SETTINGS, AT, call("998", "999"), called=called, several=True)
    assert (values(context)["User"], values(context)["DialNumber"]) == ("", "998, 999")


def test_a_call_to_a_user_id_dials_the_users_first_number() -> None:
    context = Context("call", SETTINGS, AT, call("u-bob"), called=(("u-bob", BOB),))
    assert values(context)["DialNumber"] == "102"


def test_the_device_name_is_the_events_device_when_it_names_one() -> None:
    event = call("101", device="Garage gate")
    context = Context("call", SETTINGS, AT, event, called=(("101", ALICE),))
    assert values(context)["DeviceName"] == "Garage gate"


# --- E-Mail on Access ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth_type", "shown"),
    [("card", "Card"), ("bluetooth", "Bluetooth"), ("fingerprint", "Fingerprint")],
)
def test_an_access_names_the_identifier_its_type_and_validity(auth_type: str, shown: str) -> None:
    event = access("0012AB34CD", auth_type)
    context = Context("access", SETTINGS, AT, event, user=ALICE, valid=True)
    assert values(context) == {
        "User": "Alice Novak",
        "DateTime": "2025-03-14 09:26:53",
        "AuthId": "0012AB34CD",
        "DeviceName": "Front door",
        "AuthIdType": shown,
        "AuthIdValid": "Valid",
    }


def test_an_invalid_identifier_of_nobody_has_an_empty_user() -> None:
    context = Context("access", SETTINGS, AT, access("FFFFFFFFFF"), valid=False)
    assert (values(context)["User"], values(context)["AuthIdValid"]) == ("", "Invalid")


def test_an_access_for_a_user_id_not_in_the_users_list_shows_that_id() -> None:
    context = Context("access", SETTINGS, AT, access("tag", user="u-gone"), valid=True)
    assert values(context)["User"] == "u-gone"


# --- E-Mail on Event and mail sent on demand ----------------------------------------------


@pytest.mark.parametrize(("event_type", "kind"), DEVICE_EVENT_KINDS.items())
def test_a_device_event_calls_nobody_so_the_user_is_empty(event_type: str, kind: Kind) -> None:
    event = parse_event({"type": event_type, "at": AT.isoformat()})
    assert values(Context(kind, SETTINGS, AT, event)) == {
        "User": "",
        "DateTime": "2025-03-14 09:26:53",
        "DeviceName": "Front door",
    }


def test_a_mail_sent_on_demand_for_a_user_names_the_user() -> None:
    assert values(Context("send_email", SETTINGS, AT, user=CAROL)) == {
        "User": "Carol Svoboda",
        "DateTime": "2025-03-14 09:26:53",
        "DeviceName": "Front door",
    }


def test_a_mail_sent_on_demand_to_addresses_leaves_user_as_written() -> None:
    assert "User" not in values(Context("send_email", SETTINGS, AT))


# --- $DateTime$ ---------------------------------------------------------------------------


def test_datetime_is_shown_in_the_device_timezone_with_its_format() -> None:
    device = Device(timezone="Europe/Prague", datetime_format="%d.%m.%Y %H:%M (%Z)")
    winter = datetime(2024, 1, 15, 12, 30, tzinfo=UTC)
    summer = datetime(2024, 7, 15, 12, 30, tzinfo=UTC)
    assert datetime_value(winter, device) == "15.01.2024 13:30 (CET)"
    assert datetime_value(summer, device) == "15.07.2024 14:30 (CEST)"


def test_datetime_of_a_naive_time_is_taken_as_utc() -> None:
    device = Device(timezone="America/New_York")
    assert datetime_value(datetime(2024, 1, 15, 12, 0), device) == "2024-01-15 07:00:00"


def test_datetime_can_cross_the_date_line() -> None:
    device = Device(timezone="Pacific/Auckland", datetime_format="%Y-%m-%d %H:%M")
    assert datetime_value(datetime(2024, 12, 31, 20, 0, tzinfo=UTC), device) == "2025-01-01 09:00"


# --- the preview --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_the_preview_shows_every_placeholder_of_its_kind(kind: Kind) -> None:
    assert tuple(preview_values(kind, SETTINGS, AT)) == names(kind)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_mail_can_place_its_snapshots_beyond_the_manual(kind: Kind) -> None:
    (snapshots,) = [p for p in for_kind(kind) if p.name == "Snapshots"]
    assert snapshots.beyond_manual and MARKUP == {"Snapshots": SNAPSHOTS_MARK}


@pytest.mark.parametrize("kind", KINDS)
def test_the_preview_shows_the_devices_own_name_and_time(kind: Kind) -> None:
    shown = preview_values(kind, SETTINGS, AT)
    assert (shown["DeviceName"], shown["DateTime"]) == ("Front door", "2025-03-14 09:26:53")


@pytest.mark.parametrize("kind", KINDS)
def test_sample_values_render_the_default_templates_without_leftovers(kind: Kind) -> None:
    subject, body = templates_for(Settings(), kind)
    for rendered in (
        render(subject, preview_values(kind, Settings(), AT), html=False, markup=MARKUP),
        render(body, preview_values(kind, Settings(), AT), html=True, markup=MARKUP),
    ):
        assert "$" not in rendered


def test_access_samples_use_the_extended_syntax_of_the_default_body() -> None:
    shown = preview_values("access", Settings(), datetime(2024, 5, 17, 14, 3, 27, tzinfo=UTC))
    assert "Access granted" in render(DEFAULT_ACCESS_BODY, shown, html=True)
    subject = render(DEFAULT_ACCESS_SUBJECT, shown, html=False)
    assert subject == "Access granted at doormail — card 0012AB34CD"


def test_the_preview_of_a_device_event_shows_the_empty_user_a_real_mail_has() -> None:
    assert preview_values("tamper", SETTINGS, AT)["User"] == ""


# --- the saved templates of each kind -----------------------------------------------------


def test_templates_for_each_kind_are_its_saved_subject_and_body() -> None:
    settings = Settings()
    assert templates_for(settings, "call") == (
        settings.email_on_call.subject,
        settings.email_on_call.body,
    )
    tamper = settings.email_on_event.tamper
    assert templates_for(settings, "tamper") == (tamper.subject, tamper.body)


def test_templates_for_an_unknown_kind_names_the_kinds() -> None:
    with pytest.raises(ValueError, match="call, access"):
        templates_for(Settings(), "doorbell")


# --- one entry per placeholder ------------------------------------------------------------


def test_a_placeholder_added_to_the_table_is_known_to_values_and_preview(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def answered(context: Context) -> str | None:
        return None if context.event is None else "Missed"

    state = placeholders.Placeholder(
        "CallState",
        "Missed or Answered",
        frozenset({"call"}),
        answered,
        sample="Answered",
        beyond_manual=True,
    )
    monkeypatch.setattr(placeholders, "PLACEHOLDERS", (*PLACEHOLDERS, state))
    context = Context("call", SETTINGS, AT, call("101"), called=(("101", ALICE),))
    assert values(context)["CallState"] == "Missed"
    assert preview_values("call", SETTINGS, AT)["CallState"] == "Answered"
    assert "CallState" not in preview_values("access", SETTINGS, AT)
