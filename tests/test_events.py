"""Event shapes (SPEC section 4): what each type accepts, its defaults, and errors that name the
bad field, also inside an array (`events[2].answered`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from doormail.events import (
    Access,
    CallEnded,
    CallRinging,
    DeviceRebooted,
    EventError,
    SipRegistrationLost,
    TamperActivated,
    parse_event,
    parse_events,
)


def test_every_event_type_is_accepted() -> None:
    events: list[dict[str, Any]] = [
        {"type": "call.ringing", "call_id": "c-1", "called": "101"},
        {"type": "call.ended", "call_id": "c-1", "called": ["101"], "answered": True},
        {"type": "access", "auth_type": "card", "auth_id": "0012AB34CD"},
        {"type": "sip.registration_lost", "account": "1"},
        {"type": "device.rebooted"},
        {"type": "tamper.activated"},
    ]
    parsed, was_array = parse_events(events)
    assert was_array
    assert [type(e) for e in parsed] == [
        CallRinging,
        CallEnded,
        Access,
        SipRegistrationLost,
        DeviceRebooted,
        TamperActivated,
    ]


def test_called_is_a_string_or_a_list() -> None:
    one = parse_event({"type": "call.ended", "called": "101", "answered": False})
    several = parse_event({"type": "call.ended", "called": ["101", "102"], "answered": False})
    assert isinstance(one, CallEnded) and one.called == ("101",)
    assert isinstance(several, CallEnded) and several.called == ("101", "102")


def test_defaults_direction_outgoing_time_now_and_no_id() -> None:
    before = datetime.now(UTC)
    event = parse_event({"type": "call.ended", "called": "101", "answered": False})
    assert isinstance(event, CallEnded)
    assert event.direction == "outgoing"
    assert before <= event.at <= datetime.now(UTC)
    assert event.id is None and event.device is None


def test_at_keeps_its_offset() -> None:
    event = parse_event({"type": "device.rebooted", "at": "2025-03-14T10:26:53+01:00"})
    assert event.at.utcoffset() == timedelta(hours=1)
    assert event.at.timestamp() == datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC).timestamp()


def test_one_object_in_is_not_an_array() -> None:
    events, was_array = parse_events({"type": "tamper.activated", "id": "t-1"})
    assert not was_array and events[0].id == "t-1"


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ({"type": "call.ended", "called": "101"}, "answered", "is required"),
        ({"type": "call.ended", "called": "101", "answered": "no"}, "answered", "true or false"),
        ({"type": "call.ended", "answered": False}, "called", "is required"),
        ({"type": "call.ended", "called": [], "answered": False}, "called", "must not be empty"),
        ({"type": "call.ended", "called": ["101", ""], "answered": False}, "called[1]", "empty"),
        ({"type": "call.ended", "called": 101, "answered": False}, "called", "list of strings"),
        (
            {"type": "call.ended", "called": "1", "answered": True, "direction": "inbound"},
            "direction",
            "'outgoing' or 'incoming'",
        ),
        (
            {"type": "call.ended", "called": "1", "answered": True, "started_at": "noon"},
            "started_at",
            "ISO 8601",
        ),
        ({"type": "call.ringing", "called": "101"}, "call_id", "is required"),
        ({"type": "access", "auth_type": "pin", "auth_id": "1"}, "auth_type", "'card'"),
        ({"type": "access", "auth_type": "card"}, "auth_id", "is required"),
        ({"type": "access", "auth_type": "card", "auth_id": "1", "valid": 1}, "valid", "true or"),
        ({"type": "device.rebooted", "at": "2025-03-14T10:26:53"}, "at", "UTC offset"),
        ({"type": "device.rebooted", "at": "yesterday"}, "at", "ISO 8601"),
        ({"type": "device.rebooted", "device": ""}, "device", "must not be empty"),
        ({"type": "device.rebooted", "id": "x" * 257}, "id", "at most 256"),
        ({"type": "device.rebooted", "reason": "power"}, "reason", "not a field"),
        ({"type": "doorbell"}, "type", "'doorbell' is not an event type"),
        ({"called": "101"}, "type", "is required"),
        ("tamper.activated", "event", "JSON object"),
    ],
)
def test_an_error_names_the_field(raw: object, field: str, message: str) -> None:
    with pytest.raises(EventError) as error:
        parse_events(raw)
    assert error.value.field == field
    assert message in error.value.message


def test_an_error_in_an_array_names_the_event_by_its_index() -> None:
    raw = [
        {"type": "device.rebooted"},
        {"type": "tamper.activated"},
        {"type": "call.ended", "called": ["101", "102"], "answered": "yes"},
    ]
    with pytest.raises(EventError) as error:
        parse_events(raw)
    assert error.value.field == "events[2].answered"
    with pytest.raises(EventError) as error:
        parse_events([{"type": "device.rebooted"}, 7])
    assert error.value.field == "events[1]"


@pytest.mark.parametrize("raw", [[], [{"type": "device.rebooted"}] * 1001])
def test_an_array_holds_1_to_1000_events(raw: list[Any]) -> None:
    with pytest.raises(EventError) as error:
        parse_events(raw)
    assert error.value.field == "events"
