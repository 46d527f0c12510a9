"""The 2N event log mapped to doormail's events as SPEC 11 says: calls, accesses, device events,
the idempotency id across boots, and records that cannot be mapped."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from doormail.events import Access, CallEnded, parse_event
from doormail.sources.intercom2n_log import (
    FILTER,
    UNRECOGNISED_FINGER,
    USER_WAIT_SECONDS,
    Fed,
    LogMapper,
    LogState,
    called_number,
    include_for,
)
from tests.intercom2n.emulator import Intercom
from tests.intercom2n.eventlog import EVENTS

SERIAL, DEVICE = "54-0880-2424", "door-1"
BOOT = 1_750_000_000


def record(
    log_id: int,
    event: str,
    params: dict[str, Any] | None = None,
    up: int = 100,
    boot: int = BOOT,
    tz: int = 0,
) -> dict[str, Any]:
    return {
        "id": log_id,
        "tzShift": tz,
        "utcTime": boot + up,
        "upTime": up,
        "event": event,
        "params": params or {},
    }


def call(
    log_id: int, state: str, session: int = 7, call_id: int = 1, **params: Any
) -> dict[str, Any]:
    values = {"direction": "outgoing", "state": state, "peer": "sip:101@pbx"}
    values |= {"session": session, "call": call_id, **params}
    return record(log_id, "CallStateChanged", values, up=100 + log_id)


def card(
    log_id: int, uid: str = "0A1B2C3D", valid: bool = True, session: int = 31
) -> dict[str, Any]:
    params = {"ap": 0, "session": session, "direction": "in", "reader": "internal"}
    return record(log_id, "CardEntered", params | {"uid": uid, "valid": valid}, up=100 + log_id)


def authenticated(log_id: int, name: str = "Alice", session: int = 31) -> dict[str, Any]:
    params = {"ap": 0, "session": session, "name": name, "uuid": "u-1"}
    return record(log_id, "UserAuthenticated", params, up=100 + log_id)


def mapper(state: LogState | None = None) -> LogMapper:
    return LogMapper(SERIAL, DEVICE, state)


def mapped(fed: Fed) -> list[dict[str, Any]]:
    return [m.event for m in fed.mapped]


def types(fed: Fed) -> list[str]:
    return [m.event["type"] for m in fed.mapped]


# -- calls --------------------------------------------------------------------------------


def test_an_outgoing_call_rings_and_ends_answered_when_connected_came_between() -> None:
    fed = mapper().feed([call(1, "ringing"), call(2, "connected"), call(3, "terminated")])
    ringing, ended = mapped(fed)
    assert ringing == {
        "type": "call.ringing",
        "id": f"2n:{SERIAL}:{BOOT}:1",
        "at": "2025-06-15T15:08:21+00:00",
        "device": DEVICE,
        "call_id": "7/1",
        "direction": "outgoing",
        "called": "101",
    }
    assert ended["type"] == "call.ended" and ended["call_id"] == "7/1"
    assert ended["called"] == "101" and ended["answered"] is True
    assert ended["started_at"] == ringing["at"]
    assert ended["id"] == f"2n:{SERIAL}:{BOOT}:3"


def test_an_outgoing_call_that_nobody_answers_ends_missed() -> None:
    fed = mapper().feed([call(1, "connecting"), call(2, "ringing"), call(3, "terminated")])
    assert types(fed) == ["call.ringing", "call.ended"]
    assert mapped(fed)[1]["answered"] is False


def test_incoming_calls_give_nothing() -> None:
    records = [
        call(n, s, direction="incoming")
        for n, s in enumerate(["ringing", "connected", "terminated"], 1)
    ]
    assert mapper().feed(records).mapped == []


@pytest.mark.parametrize(
    ("peer", "called"),
    [
        ("sip:101@pbx", "101"),
        ("sips:alice@pbx.example.com;transport=tls", "alice"),
        ("<sip:102@10.0.0.1:5060>", "102"),
        ("tel:+420123456789", "+420123456789"),
        ("103", "103"),
        ("", None),
        (None, None),
    ],
)
def test_the_called_number_is_the_user_part_of_the_peer(peer: object, called: str | None) -> None:
    assert called_number(peer) == called


def test_each_call_of_a_session_is_a_call_of_its_own() -> None:
    fed = mapper().feed(
        [
            call(1, "ringing", call_id=1, peer="sip:101@pbx"),
            call(2, "ringing", call_id=2, peer="sip:102@pbx"),
            call(3, "connected", call_id=2, peer="sip:102@pbx"),
            call(4, "terminated", call_id=1, peer="sip:101@pbx"),
            call(5, "terminated", call_id=2, peer="sip:102@pbx"),
        ]
    )
    ended = [e for e in mapped(fed) if e["type"] == "call.ended"]
    assert [(e["call_id"], e["called"], e["answered"]) for e in ended] == [
        ("7/1", "101", False),
        ("7/2", "102", True),
    ]


def test_a_call_ending_after_a_restart_of_doormail_remembers_it_was_answered() -> None:
    first = mapper()
    first.feed([call(1, "ringing"), call(2, "connected")])
    saved = json.loads(json.dumps(first.state.to_json()))
    fed = mapper(LogState.from_json(saved)).feed([call(3, "terminated")])
    (ended,) = mapped(fed)
    assert ended["answered"] is True and ended["started_at"] == "2025-06-15T15:08:21+00:00"


# -- accesses -----------------------------------------------------------------------------


def test_an_invalid_card_is_an_access_with_its_uid_at_once() -> None:
    (access,) = mapped(mapper().feed([card(1, "FFFF0000", valid=False)]))
    assert access == {
        "type": "access",
        "id": f"2n:{SERIAL}:{BOOT}:1",
        "at": "2025-06-15T15:08:21+00:00",
        "device": DEVICE,
        "auth_type": "card",
        "auth_id": "FFFF0000",
        "valid": False,
    }


def test_a_valid_card_waits_for_user_authenticated_of_its_session_which_names_the_user() -> None:
    logs = mapper()
    assert logs.feed([card(1)]).mapped == []
    (access,) = logs.feed([authenticated(2)]).mapped
    assert access.event["auth_id"] == "0A1B2C3D" and access.event["valid"] is True
    assert access.event["id"] == f"2n:{SERIAL}:{BOOT}:1"  # the card's record, not the name's
    assert access.user_name == "Alice"
    assert logs.state.held == []


def test_the_intercoms_user_name_is_used_only_when_the_users_list_does_not_know_the_card() -> None:
    (access,) = mapper().feed([card(1), authenticated(2, "Alice Smith")]).mapped
    assert "user" not in access.named(known=True)
    named = access.named(known=False)
    assert named["user"] == "Alice Smith"
    event = parse_event(named)
    assert isinstance(event, Access) and event.user == "Alice Smith"


def test_user_rejected_lets_the_card_go_without_a_name() -> None:
    rejected = record(2, "UserRejected", {"ap": 0, "session": 31, "reason": "invalidTime"})
    (access,) = mapper().feed([card(1), rejected]).mapped
    assert access.user_name is None and access.named(known=False) == access.event


def test_a_card_nobody_authenticates_goes_out_once_the_wait_is_over() -> None:
    logs = mapper()
    logs.feed([card(1)])
    card_time = BOOT + 101
    assert logs.due(card_time + USER_WAIT_SECONDS - 1) == []
    (access,) = logs.due(card_time + USER_WAIT_SECONDS)
    assert access.user_name is None and access.event["auth_id"] == "0A1B2C3D"


def test_a_later_record_of_the_log_ends_the_wait_of_an_earlier_card() -> None:
    later = record(2, "TamperSwitchActivated", {"state": "in"}, up=101 + USER_WAIT_SECONDS)
    fed = mapper().feed([card(1), later])
    assert types(fed) == ["access", "tamper.activated"]


def test_a_held_card_survives_a_restart_of_doormail_in_the_state() -> None:
    first = mapper()
    first.feed([card(1)])
    restored = mapper(LogState.from_json(json.loads(json.dumps(first.state.to_json()))))
    (access,) = restored.feed([authenticated(2)]).mapped
    assert access.user_name == "Alice" and access.event["id"] == f"2n:{SERIAL}:{BOOT}:1"


def test_a_mobile_key_is_a_bluetooth_access_with_its_authid() -> None:
    params = {"session": 3, "direction": "in", "authid": "a1b2c3d4e5f6", "valid": False}
    (access,) = mapped(mapper().feed([record(1, "MobKeyEntered", params)]))
    assert (access["auth_type"], access["auth_id"], access["valid"]) == (
        "bluetooth",
        "a1b2c3d4e5f6",
        False,
    )


def test_a_finger_is_a_fingerprint_access_of_the_user_it_matched_or_unrecognised() -> None:
    matched = record(1, "FingerEntered", {"direction": "in", "uuid": "u-7", "valid": True})
    unknown = record(2, "FingerEntered", {"direction": "in", "valid": False, "session": 9})
    first, second = mapped(mapper().feed([matched, unknown]))
    assert (first["auth_type"], first["auth_id"], first["valid"]) == ("fingerprint", "u-7", True)
    assert (second["auth_id"], second["valid"]) == (UNRECOGNISED_FINGER, False)


# -- device events ------------------------------------------------------------------------


def test_registration_lost_only_when_the_sip_account_becomes_unregistered() -> None:
    fed = mapper().feed(
        [
            record(1, "RegistrationStateChanged", {"sipAccount": 1, "state": "registering"}),
            record(2, "RegistrationStateChanged", {"sipAccount": 1, "state": "registered"}),
            record(3, "RegistrationStateChanged", {"sipAccount": 2, "state": "unregistered"}),
        ]
    )
    (lost,) = mapped(fed)
    assert lost["type"] == "sip.registration_lost" and lost["account"] == "2"
    assert lost["id"] == f"2n:{SERIAL}:{BOOT}:3"


def test_device_state_startup_is_device_rebooted() -> None:
    fed = mapper().feed([record(1, "DeviceState", {"state": "startup"}, up=0)])
    (rebooted,) = mapped(fed)
    assert rebooted["type"] == "device.rebooted" and rebooted["at"] == "2025-06-15T15:06:40+00:00"


def test_the_tamper_switch_activated_is_tamper_activated_and_closing_it_gives_nothing() -> None:
    fed = mapper().feed(
        [
            record(1, "TamperSwitchActivated", {"state": "in"}),
            record(2, "TamperSwitchActivated", {"state": "out"}),
        ]
    )
    assert types(fed) == ["tamper.activated"]


def test_events_the_mapping_does_not_know_are_ignored() -> None:
    fed = mapper().feed(
        [
            record(1, "KeyPressed", {"key": "1"}),
            record(2, "MotionDetected", {"state": "in"}),
            record(3, "DeviceState", {"state": "shutdown"}),
        ]
    )
    assert fed.mapped == [] and fed.rejected == []


def test_every_mapped_event_is_an_event_of_spec_section_4() -> None:
    fed = mapper().feed(
        [
            record(1, "DeviceState", {"state": "startup"}, up=0),
            call(2, "ringing"),
            call(3, "connected"),
            call(4, "terminated"),
            card(5, valid=False),
            record(6, "MobKeyEntered", {"authid": "a1", "valid": True}),
            record(7, "FingerEntered", {"valid": False}),
            record(8, "RegistrationStateChanged", {"sipAccount": 1, "state": "unregistered"}),
            record(9, "TamperSwitchActivated", {"state": "in"}),
        ]
    )
    parsed = [parse_event(event) for event in mapped(fed)]
    assert [event.type for event in parsed] == [
        "device.rebooted",
        "call.ringing",
        "call.ended",
        "access",
        "access",
        "access",
        "sip.registration_lost",
        "tamper.activated",
    ]
    ended = parsed[2]
    assert isinstance(ended, CallEnded) and ended.started_at is not None


def test_the_time_of_an_event_is_its_utc_time_in_the_intercoms_time_zone() -> None:
    (event,) = mapped(mapper().feed([record(1, "TamperSwitchActivated", tz=120)]))
    assert event["at"] == "2025-06-15T17:08:20+02:00"
    assert parse_event(event).at.timestamp() == BOOT + 100


# -- the id across boots ------------------------------------------------------------------


def test_the_id_is_the_serial_the_boot_and_the_log_id() -> None:
    (event,) = mapped(mapper().feed([record(42, "TamperSwitchActivated")]))
    assert event["id"] == f"2n:{SERIAL}:{BOOT}:42"


def test_a_boot_a_second_or_two_apart_is_the_same_boot_and_keeps_the_id() -> None:
    logs = mapper()
    fed = logs.feed(
        [
            record(1, "TamperSwitchActivated", boot=BOOT),
            record(2, "TamperSwitchActivated", boot=BOOT + 1),
            record(3, "TamperSwitchActivated", boot=BOOT - 2),
        ]
    )
    assert [e["id"] for e in mapped(fed)] == [f"2n:{SERIAL}:{BOOT}:{n}" for n in (1, 2, 3)]
    assert fed.new_boot is False
    # The same record read again after a restart of doormail, its times a second apart:
    saved = LogState.from_json(json.loads(json.dumps(logs.state.to_json())))
    saved.last_id = 2
    again = mapper(saved).feed([record(3, "TamperSwitchActivated", boot=BOOT + 1)])
    assert [e["id"] for e in mapped(again)] == [f"2n:{SERIAL}:{BOOT}:3"]


def test_records_taken_before_give_nothing_when_read_again() -> None:
    logs = mapper()
    batch = [record(1, "DeviceState", {"state": "startup"}, up=0), card(2, valid=False)]
    assert len(logs.feed(batch).mapped) == 2
    assert logs.feed(batch).mapped == []
    assert logs.state.last_id == 2


def test_a_restart_of_the_intercom_is_a_new_boot_with_ids_from_1() -> None:
    logs = mapper()
    logs.feed([call(1, "ringing"), card(2), record(3, "TamperSwitchActivated")])
    new_boot = BOOT + 3600
    fed = logs.feed([record(1, "DeviceState", {"state": "startup"}, up=0, boot=new_boot)])
    assert fed.new_boot is True
    # The card that waited for its name goes out with its old boot's id; the call is gone.
    assert [e["id"] for e in mapped(fed)] == [
        f"2n:{SERIAL}:{BOOT}:2",
        f"2n:{SERIAL}:{new_boot}:1",
    ]
    assert logs.state.boot == new_boot and logs.state.last_id == 1
    assert logs.state.calls == {} and logs.state.held == []


# -- what cannot be mapped ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"id": "7", "utcTime": BOOT, "upTime": 1, "event": "DeviceState"}, "id must be"),
        ({"id": 7, "utcTime": BOOT, "upTime": -1, "event": "DeviceState"}, "upTime must be"),
        ({"id": 7, "utcTime": BOOT, "upTime": 1, "event": 5}, "event must be"),
        ({"id": 7, "utcTime": BOOT, "upTime": 1, "event": "DeviceState", "params": []}, "params"),
        (record(7, "CardEntered", {"valid": False}), "uid must name"),
        (record(7, "CardEntered", {"uid": "0A", "valid": "yes"}), "valid must be"),
        (record(7, "MobKeyEntered", {"authid": "", "valid": True}), "authid must name"),
        (record(7, "CallStateChanged", {"direction": "sideways", "state": "ringing"}), "direction"),
        (
            record(7, "CallStateChanged", {"direction": "outgoing", "state": "ringing", "call": 1}),
            "session",
        ),
        (call(7, "terminated", peer=""), "peer must name"),
        ("not a record", "JSON object"),
    ],
)
def test_a_record_that_cannot_be_mapped_is_rejected_with_its_reason(
    bad: object, reason: str
) -> None:
    fed = mapper().feed([bad, record(8, "TamperSwitchActivated", up=200)])
    (rejected,) = fed.rejected
    assert reason in rejected.reason
    assert types(fed) == ["tamper.activated"]  # the next record still maps


def test_a_rejected_record_names_its_log_id_and_event() -> None:
    (rejected,) = mapper().feed([record(9, "CardEntered", {"valid": True})]).rejected
    assert (rejected.log_id, rejected.name) == (9, "CardEntered")


def test_a_state_that_is_not_one_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a 2N log state"):
        LogState.from_json({"boot": 1, "last_id": "x"})


# -- subscribing --------------------------------------------------------------------------


def test_include_is_new_at_first_minus_t_back_to_the_last_record_and_all_after_a_restart() -> None:
    state = LogState()
    assert include_for(state, BOOT + 500, intercom_restarted=False) == "new"
    mapper(state).feed([record(1, "TamperSwitchActivated", up=100)])
    assert include_for(state, BOOT + 160, intercom_restarted=False) == "-62"
    assert include_for(state, BOOT + 160, intercom_restarted=True) == "all"


def test_the_filter_names_only_events_the_intercom_records() -> None:
    assert set(FILTER) <= EVENTS.keys()
    assert {"CallStateChanged", "CardEntered", "UserAuthenticated", "DeviceState"} <= set(FILTER)


async def test_the_emulated_intercoms_log_maps_to_doormails_events() -> None:
    async with (
        Intercom(serial=SERIAL, up_time=60) as intercom,
        httpx.AsyncClient(
            base_url=intercom.url, auth=httpx.DigestAuth("api", "api-password")
        ) as api,
    ):
        reply = await api.get(
            "/api/log/subscribe", params={"include": "all", "filter": ",".join(FILTER)}
        )
        channel = reply.json()["result"]["id"]
        intercom.call(answered=False)
        intercom.card("0A1B2C3D", user="Alice")
        intercom.registration("unregistered")
        intercom.tamper()
        intercom.append("KeyPressed", {"key": "5"})
        reply = await api.get("/api/log/pull", params={"id": channel})
    logs = mapper()
    fed = logs.feed(reply.json()["result"]["events"])
    assert fed.rejected == []
    assert types(fed) == [
        "device.rebooted",
        "call.ringing",
        "call.ended",
        "access",
        "sip.registration_lost",
        "tamper.activated",
    ]
    access = next(m for m in fed.mapped if m.event["type"] == "access")
    assert access.user_name == "Alice"
    boot = logs.state.boot
    assert boot is not None and abs(boot - intercom.log.boot_at) <= 1
    assert all(e["id"].startswith(f"2n:{SERIAL}:{boot}:") for e in mapped(fed))
    assert [parse_event(e).type for e in mapped(fed)] == types(fed)
