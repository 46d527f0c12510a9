"""The emulated 2N intercom answers as the HTTP API manual says: driven over real sockets with
httpx, as the 2N event source will drive a real intercom."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.camera.pattern import moment_of
from tests.conftest import free_ports
from tests.intercom2n.auth import PRIVILEGES, Account
from tests.intercom2n.emulator import Intercom, IntercomThread, RemoteIntercom
from tests.intercom2n.eventlog import PULL_BATCH

USER, PASSWORD = "api", "api-password"


@pytest.fixture
async def intercom() -> AsyncIterator[Intercom]:
    async with Intercom(user=USER, password=PASSWORD, up_time=1000) as running:
        yield running


def client(
    intercom: Intercom | IntercomThread | str,
    auth: httpx.Auth | None = None,
) -> httpx.AsyncClient:
    url = intercom if isinstance(intercom, str) else intercom.url
    return httpx.AsyncClient(
        base_url=url, auth=auth or httpx.DigestAuth(USER, PASSWORD), timeout=30
    )


async def call(api: httpx.AsyncClient, path: str, **params: Any) -> dict[str, Any]:
    response = await api.get(path, params=params)
    assert response.status_code == 200, response.text
    reply: dict[str, Any] = response.json()
    return reply


async def result(api: httpx.AsyncClient, path: str, **params: Any) -> dict[str, Any]:
    reply = await call(api, path, **params)
    assert reply["success"] is True, reply
    found: dict[str, Any] = reply.get("result", {})
    return found


async def error(api: httpx.AsyncClient, path: str, **params: Any) -> dict[str, Any]:
    reply = await call(api, path, **params)
    assert reply["success"] is False, reply
    found: dict[str, Any] = reply["error"]
    return found


async def subscribe(api: httpx.AsyncClient, **params: Any) -> int:
    channel: int = (await result(api, "/api/log/subscribe", **params))["id"]
    return channel


async def pull(api: httpx.AsyncClient, channel: int, timeout: int = 0) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = (
        await result(api, "/api/log/pull", id=channel, timeout=timeout)
    )["events"]
    return events


def names(events: list[dict[str, Any]]) -> list[str]:
    return [event["event"] for event in events]


# -- system -------------------------------------------------------------------------------


async def test_system_info_names_the_intercom_and_its_serial_number() -> None:
    intercom = Intercom(serial="54-0880-0001", device_name="Main door")
    async with intercom, client(intercom) as api:
        info = await result(api, "/api/system/info")
    assert info["serialNumber"] == "54-0880-0001"
    assert info["deviceName"] == "Main door"
    assert {"variant", "hwVersion", "swVersion", "buildType"} <= info.keys()


async def test_system_status_tells_the_intercoms_time_and_how_long_it_has_been_up(
    intercom: Intercom,
) -> None:
    async with client(intercom) as api:
        status = await result(api, "/api/system/status")
        intercom.advance(60)
        later = await result(api, "/api/system/status")
    assert abs(status["systemTime"] - time.time()) <= 2
    assert 999 <= status["upTime"] <= 1002
    assert later["upTime"] - status["upTime"] in (60, 61)


# -- authentication -----------------------------------------------------------------------


async def test_a_request_without_credentials_gets_401_and_a_digest_challenge(
    intercom: Intercom,
) -> None:
    async with httpx.AsyncClient(base_url=intercom.url) as api:
        response = await api.get("/api/system/info")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == 9
    (challenge,) = response.headers.get_list("www-authenticate")
    assert challenge.startswith("Digest ") and 'qop="auth"' in challenge


async def test_a_wrong_password_is_refused_with_401(intercom: Intercom) -> None:
    async with client(intercom, httpx.DigestAuth(USER, "wrong")) as api:
        response = await api.get("/api/system/info")
    assert response.status_code == 401


async def test_an_intercom_asking_for_digest_refuses_basic_credentials(intercom: Intercom) -> None:
    async with client(intercom, httpx.BasicAuth(USER, PASSWORD)) as api:
        response = await api.get("/api/system/info")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == 8  # invalid authentication method


async def test_an_intercom_asking_for_basic_accepts_basic_and_refuses_a_wrong_password() -> None:
    async with Intercom(auth="basic", user=USER, password=PASSWORD) as intercom:
        async with client(intercom, httpx.BasicAuth(USER, PASSWORD)) as api:
            assert (await api.get("/api/system/info")).status_code == 200
        async with client(intercom, httpx.BasicAuth(USER, "wrong")) as api:
            response = await api.get("/api/system/info")
    assert response.status_code == 401
    assert response.headers.get_list("www-authenticate") == ['Basic realm="HTTP API"']


async def test_digest_works_when_the_intercom_offers_basic_first() -> None:
    async with Intercom(auth="both", user=USER, password=PASSWORD) as intercom:
        async with httpx.AsyncClient(base_url=intercom.url) as api:
            challenges = (await api.get("/api/system/info")).headers.get_list("www-authenticate")
        async with client(intercom, httpx.DigestAuth(USER, PASSWORD)) as api:
            digest = await api.get("/api/system/info")
        async with client(intercom, httpx.BasicAuth(USER, PASSWORD)) as api:
            basic = await api.get("/api/system/info")
    assert [c.split()[0] for c in challenges] == ["Basic", "Digest"]
    assert digest.status_code == basic.status_code == 200


async def test_a_digest_nonce_from_before_a_restart_is_stale_and_renewed(
    intercom: Intercom,
) -> None:
    auth = httpx.DigestAuth(USER, PASSWORD)
    async with client(intercom, auth) as api:
        await result(api, "/api/system/info")
    intercom.restart()
    async with client(intercom, auth) as api:
        info = await result(api, "/api/system/info")  # the old nonce first, then a new one
    assert info["serialNumber"] == intercom.serial


# -- event log ----------------------------------------------------------------------------


async def test_a_channel_with_include_new_sees_only_events_after_its_subscription(
    intercom: Intercom,
) -> None:
    intercom.tamper()
    async with client(intercom) as api:
        channel = await subscribe(api)  # include=new is the default
        assert await pull(api, channel) == []
        intercom.registration("unregistered")
        (event,) = await pull(api, channel)
    assert event["event"] == "RegistrationStateChanged"
    assert event["params"] == {"sipAccount": 1, "state": "unregistered"}
    assert event["id"] == 3
    assert event["utcTime"] - event["upTime"] in range(
        int(intercom.log.boot_at) - 1, int(intercom.log.boot_at) + 2
    )
    assert event["tzShift"] == 0


async def test_include_all_replays_the_history_from_the_startup_with_id_1(
    intercom: Intercom,
) -> None:
    intercom.tamper()
    async with client(intercom) as api:
        events = await pull(api, await subscribe(api, include="all"))
    assert [(e["id"], e["event"]) for e in events] == [
        (1, "DeviceState"),
        (2, "TamperSwitchActivated"),
    ]
    assert events[0]["params"] == {"state": "startup"}
    assert events[0]["upTime"] == 0


async def test_include_minus_t_replays_the_events_of_the_last_t_seconds(
    intercom: Intercom,
) -> None:
    intercom.tamper("in")
    intercom.advance(100)
    intercom.tamper("out")
    async with client(intercom) as api:
        last_50 = await pull(api, await subscribe(api, include="-50"))
        last_150 = await pull(api, await subscribe(api, include="-150"))
    assert [e["params"]["state"] for e in last_50] == ["out"]
    assert [e["params"]["state"] for e in last_150] == ["in", "out"]


async def test_an_include_that_is_not_new_all_or_minus_t_is_error_12(intercom: Intercom) -> None:
    async with client(intercom) as api:
        found = await error(api, "/api/log/subscribe", include="yesterday")
    assert found == {"code": 12, "param": "include", "description": "invalid parameter value"}


async def test_a_filter_keeps_only_the_named_events(intercom: Intercom) -> None:
    async with client(intercom) as api:
        channel = await subscribe(api, filter="CardEntered,TamperSwitchActivated")
        intercom.registration("registered")
        intercom.card("0A1B2C3D", user="Alice")  # CardEntered and UserAuthenticated
        intercom.tamper()
        events = await pull(api, channel)
    assert names(events) == ["CardEntered", "TamperSwitchActivated"]


async def test_an_unknown_event_in_the_filter_is_error_12(intercom: Intercom) -> None:
    async with client(intercom) as api:
        found = await error(api, "/api/log/subscribe", filter="CardEntered,DoorbellRung")
    assert found["code"] == 12 and found["param"] == "filter"


async def test_a_pull_takes_at_most_128_events_and_the_next_pull_the_rest(
    intercom: Intercom,
) -> None:
    async with client(intercom) as api:
        channel = await subscribe(api)
        for _ in range(300):
            intercom.tamper()
        sizes = [len(await pull(api, channel)) for _ in range(4)]
    assert PULL_BATCH == 128
    assert sizes == [128, 128, 44, 0]


async def test_a_long_poll_answers_as_soon_as_an_event_arrives(intercom: Intercom) -> None:
    async with client(intercom) as api:
        channel = await subscribe(api)
        asyncio.get_running_loop().call_later(0.3, intercom.tamper)
        started = time.monotonic()
        events = await pull(api, channel, timeout=20)
        elapsed = time.monotonic() - started
    assert names(events) == ["TamperSwitchActivated"]
    assert 0.25 <= elapsed < 2


async def test_a_long_poll_without_events_answers_empty_after_its_timeout(
    intercom: Intercom,
) -> None:
    async with client(intercom) as api:
        channel = await subscribe(api)
        started = time.monotonic()
        events = await pull(api, channel, timeout=1)
        elapsed = time.monotonic() - started
    assert events == []
    assert 0.9 <= elapsed < 3


async def test_a_pull_of_an_unknown_channel_is_error_12(intercom: Intercom) -> None:
    async with client(intercom) as api:
        found = await error(api, "/api/log/pull", id=12345)
    assert found == {"code": 12, "param": "id", "description": "invalid parameter value"}


async def test_a_pull_without_an_id_is_error_11(intercom: Intercom) -> None:
    async with client(intercom) as api:
        found = await error(api, "/api/log/pull")
    assert found["code"] == 11 and found["param"] == "id"


async def test_after_unsubscribe_the_channel_id_is_an_error(intercom: Intercom) -> None:
    async with client(intercom) as api:
        channel = await subscribe(api)
        assert await result(api, "/api/log/unsubscribe", id=channel) == {}
        pulled = await error(api, "/api/log/pull", id=channel)
        again = await error(api, "/api/log/unsubscribe", id=channel)
    assert pulled["code"] == again["code"] == 12


async def test_a_channel_not_pulled_for_its_duration_is_closed(intercom: Intercom) -> None:
    async with client(intercom) as api:
        idle = await subscribe(api, duration=30)
        pulled = await subscribe(api, duration=30)
        intercom.advance(20)
        await pull(api, pulled)
        intercom.advance(20)
        assert await pull(api, pulled) == []
        found = await error(api, "/api/log/pull", id=idle)
    assert found["code"] == 12


async def test_a_channel_lives_90_seconds_without_a_pull_by_default(intercom: Intercom) -> None:
    async with client(intercom) as api:
        channel = await subscribe(api)
        intercom.advance(89)
        assert await pull(api, channel) == []
        intercom.advance(91)
        found = await error(api, "/api/log/pull", id=channel)
    assert found["code"] == 12


async def test_an_account_without_monitoring_privileges_sees_no_calls_or_cards() -> None:
    accounts = [Account(USER, PASSWORD, frozenset({"camera"})), Account("admin", "x")]
    async with (
        Intercom(accounts=accounts) as intercom,
        client(intercom) as api,
        client(intercom, httpx.DigestAuth("admin", "x")) as full,
    ):
        caps = (await result(api, "/api/log/caps"))["events"]
        full_caps = (await result(full, "/api/log/caps"))["events"]
        channel = await subscribe(api)
        full_channel = await subscribe(full)
        intercom.call()
        intercom.card("0A1B2C3D")
        intercom.registration()
        intercom.tamper()
        seen, full_seen = await pull(api, channel), await pull(full, full_channel)
    assert "CardEntered" not in caps and "CallStateChanged" not in caps
    assert {"DeviceState", "TamperSwitchActivated"} <= set(caps)
    assert {"CardEntered", "CallStateChanged", "MobKeyEntered"} <= set(full_caps)
    assert names(seen) == ["TamperSwitchActivated"]
    assert len(full_seen) == 6


async def test_after_a_restart_channels_are_lost_ids_start_at_1_and_the_boot_changes(
    intercom: Intercom,
) -> None:
    async with client(intercom) as api:
        channel = await subscribe(api)
        intercom.tamper()
        (before,) = await pull(api, channel)
    intercom.advance(45)
    intercom.restart()
    async with client(intercom) as api:
        lost = await error(api, "/api/log/pull", id=channel)
        history = await pull(api, await subscribe(api, include="all"))
        channel = await subscribe(api)
        intercom.advance(5)
        intercom.tamper()
        (after,) = await pull(api, channel)
    assert lost["code"] == 12
    assert [(e["id"], e["event"], e["params"]) for e in history] == [
        (1, "DeviceState", {"state": "startup"})
    ]
    assert history[0]["upTime"] == 0
    assert after["id"] == 2 and after["upTime"] == 5
    old_boot = before["utcTime"] - before["upTime"]
    new_boot = after["utcTime"] - after["upTime"]
    assert abs(new_boot - old_boot - 1045) <= 2


async def test_a_restart_cuts_a_pending_long_poll(intercom: Intercom) -> None:
    async with client(intercom) as api:
        channel = await subscribe(api)
        asyncio.get_running_loop().call_later(0.3, intercom.restart)
        with pytest.raises(httpx.TransportError):
            await pull(api, channel, timeout=20)


async def test_the_history_keeps_only_the_last_events() -> None:
    async with Intercom(history=5) as intercom:
        for _ in range(10):
            intercom.tamper()
        async with client(intercom) as api:
            events = await pull(api, await subscribe(api, include="all"))
    assert [e["id"] for e in events] == [7, 8, 9, 10, 11]


async def test_parameters_may_come_in_a_post_body(intercom: Intercom) -> None:
    async with client(intercom) as api:
        response = await api.post("/api/log/subscribe", data={"include": "all"})
        channel = response.json()["result"]["id"]
        response = await api.post("/api/log/pull", data={"id": str(channel)})
    assert names(response.json()["result"]["events"]) == ["DeviceState"]


async def test_an_unknown_path_is_error_2_and_another_method_error_3(intercom: Intercom) -> None:
    async with client(intercom) as api:
        unknown = await error(api, "/api/lift/grantaccess")
        put = (await api.put("/api/log/caps")).json()["error"]
    assert unknown["code"] == 2 and put["code"] == 3


# -- the door's helpers -------------------------------------------------------------------


async def test_a_whole_call_is_ringing_connected_terminated_with_session_call_and_peer(
    intercom: Intercom,
) -> None:
    async with client(intercom) as api:
        channel = await subscribe(api)
        session, call_id = intercom.call(peer="sip:101@pbx", answered=True)
        intercom.call(answered=False)
        events = await pull(api, channel)
    first = [e["params"] for e in events[:3]]
    assert [p["state"] for p in first] == ["ringing", "connected", "terminated"]
    assert first[0] == {
        "direction": "outgoing",
        "state": "ringing",
        "peer": "sip:101@pbx",
        "session": session,
        "call": call_id,
    }
    assert [e["params"]["state"] for e in events[3:]] == ["ringing", "terminated"]
    assert events[3]["params"]["session"] != session


async def test_a_card_of_a_known_user_is_followed_by_user_authenticated_in_its_session(
    intercom: Intercom,
) -> None:
    async with client(intercom) as api:
        channel = await subscribe(api)
        session = intercom.card("0A1B2C3D", user="Alice", uuid="u-1")
        intercom.card("FFFF0000", valid=False)
        intercom.mobile_key("a1b2c3d4e5f6", user="Bob")
        intercom.fingerprint(None, valid=False)
        events = await pull(api, channel)
    assert names(events) == [
        "CardEntered",
        "UserAuthenticated",
        "CardEntered",
        "MobKeyEntered",
        "UserAuthenticated",
        "FingerEntered",
    ]
    card, user = events[0]["params"], events[1]["params"]
    assert card["uid"] == "0A1B2C3D" and card["valid"] is True and card["session"] == session
    assert {"reader", "direction", "ap", "uuid"} <= card.keys()
    assert user == {"ap": 0, "session": session, "name": "Alice", "uuid": "u-1"}
    assert events[2]["params"]["valid"] is False
    assert events[3]["params"]["authid"] == "a1b2c3d4e5f6"
    assert events[5]["params"]["valid"] is False and "uuid" not in events[5]["params"]


# -- camera -------------------------------------------------------------------------------


async def test_camera_caps_lists_resolutions_and_sources(intercom: Intercom) -> None:
    async with client(intercom) as api:
        caps = await result(api, "/api/camera/caps")
    assert {"width": 640, "height": 480} in caps["jpegResolution"]
    assert caps["sources"] == [{"source": "internal"}, {"source": "external"}]


async def test_a_snapshot_with_time_shows_the_moment_that_many_seconds_ago(
    intercom: Intercom,
) -> None:
    async with client(intercom) as api:
        now = intercom.clock.now()
        past = await api.get(
            "/api/camera/snapshot", params={"width": 640, "height": 480, "time": -5}
        )
        current = await api.get("/api/camera/snapshot", params={"width": 320, "height": 240})
    assert past.headers["content-type"] == "image/jpeg"
    past_moment = moment_of(past.content, now)
    current_moment = moment_of(current.content, now)
    assert past_moment is not None and current_moment is not None
    assert abs(past_moment - (now - 5)) <= 0.3
    assert abs(current_moment - now) <= 0.3


async def test_a_snapshot_beyond_the_30_seconds_kept_is_error_12(intercom: Intercom) -> None:
    async with client(intercom) as api:
        too_old = await error(api, "/api/camera/snapshot", width=640, height=480, time=-31)
        odd_size = await error(api, "/api/camera/snapshot", width=641, height=480)
        no_size = await error(api, "/api/camera/snapshot")
    assert too_old == {"code": 12, "param": "time", "description": "invalid parameter value"}
    assert odd_size["code"] == 12 and odd_size["param"] == "width"
    assert no_size["code"] == 11


async def test_a_snapshot_needs_the_camera_monitoring_privilege() -> None:
    privileges = PRIVILEGES - {"camera"}
    intercom = Intercom(user=USER, password=PASSWORD, privileges=privileges)
    async with intercom, client(intercom) as api:
        found = await error(api, "/api/camera/snapshot", width=640, height=480)
    assert found["code"] == 10


# -- faults -------------------------------------------------------------------------------


async def test_fail_next_answers_500_to_that_many_requests_then_recovers(
    intercom: Intercom,
) -> None:
    async with client(intercom) as api:
        await result(api, "/api/system/info")  # Digest settled
        intercom.fail_next(2)
        statuses = [(await api.get("/api/system/info")).status_code for _ in range(3)]
    assert statuses == [500, 500, 200]


async def test_drop_next_closes_the_connection_without_a_reply(intercom: Intercom) -> None:
    async with client(intercom) as api:
        await result(api, "/api/system/info")
        intercom.drop_next()
        with pytest.raises(httpx.RemoteProtocolError):
            await api.get("/api/system/info")
        assert (await api.get("/api/system/info")).status_code == 200


async def test_delay_next_answers_late(intercom: Intercom) -> None:
    async with client(intercom) as api:
        await result(api, "/api/system/info")
        intercom.delay_next(0.5)
        started = time.monotonic()
        await result(api, "/api/system/info")
        slow = time.monotonic() - started
        started = time.monotonic()
        await result(api, "/api/system/info")
        fast = time.monotonic() - started
    assert slow >= 0.5 > fast


async def test_requests_are_counted_by_path(intercom: Intercom) -> None:
    async with client(intercom) as api:
        channel = await subscribe(api)
        await pull(api, channel)
        await pull(api, channel)
    # The first request of a Digest client is its unauthenticated challenge.
    assert intercom.requests["/api/log/pull"] == 2
    assert intercom.requests["/api/log/subscribe"] == 2
    assert intercom.requests["/api/camera/snapshot"] == 0


# -- other ways to run it -----------------------------------------------------------------


def test_an_intercom_thread_serves_tests_that_are_not_async() -> None:
    with IntercomThread(user=USER, password=PASSWORD) as intercom:
        with httpx.Client(base_url=intercom.url, auth=httpx.DigestAuth(USER, PASSWORD)) as api:
            channel = api.get("/api/log/subscribe").json()["result"]["id"]
            intercom.card("0A1B2C3D")
            intercom.fail_next()
            assert api.get("/api/log/pull", params={"id": channel}).status_code == 500
            events = api.get("/api/log/pull", params={"id": channel}).json()["result"]["events"]
            intercom.restart()
        assert intercom.state()["lastId"] == 1
    assert names(events) == ["CardEntered"]


def test_the_command_line_runs_many_intercoms_that_another_process_drives() -> None:
    first = free_ports(3)
    command = [sys.executable, "-m", "tests.intercom2n.emulator", "--count", "3"]
    command += ["--first-port", str(first), "--user", USER, "--password", PASSWORD]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().split() for _ in range(3)]
        assert [url for url, _ in lines] == [f"http://127.0.0.1:{first + i}" for i in range(3)]
        assert len({serial for _, serial in lines}) == 3
        url = lines[1][0]
        with httpx.Client(base_url=url, auth=httpx.DigestAuth(USER, PASSWORD)) as api:
            channel = api.get("/api/log/subscribe").json()["result"]["id"]
            with RemoteIntercom(url) as remote:
                remote.card("0A1B2C3D", user="Alice")
                pulled = api.get("/api/log/pull", params={"id": channel, "timeout": 5})
                remote.restart()
                assert remote.state()["lastId"] == 1
            with contextlib.suppress(httpx.TransportError):
                api.get("/api/system/info")  # on the connection the restart cut, if still open
            lost = api.get("/api/log/pull", params={"id": channel}).json()
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
    assert names(pulled.json()["result"]["events"]) == ["CardEntered", "UserAuthenticated"]
    assert lost["error"]["code"] == 12
