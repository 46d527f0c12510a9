"""Testing a 2N device's source (`POST /api/devices/{id}/test`) against the emulated intercom:
every stage passes for a full account; an account without the monitoring rights is told which
events it cannot see and which rights to give; a wrong password fails at authentication, an
address nobody answers at reachable; the device's status and the source metrics follow."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from fastapi.testclient import TestClient

from doormail.devices.model import Intercom2N
from doormail.sources.intercom2n_check import check
from tests.conftest import free_port
from tests.intercom2n.emulator import Intercom, IntercomThread

USER, PASSWORD = "api", "api-password"


def source(url: str, password: str = PASSWORD) -> Intercom2N:
    return Intercom2N(kind="2n", url=url, username=USER, password=password)


def stages(result: dict[str, Any]) -> dict[str, bool]:
    return {stage["stage"]: stage["ok"] for stage in result["stages"]}


async def test_a_full_account_passes_every_stage() -> None:
    async with Intercom(user=USER, password=PASSWORD) as intercom:
        result = await check(source(intercom.url))
    assert result["ok"] is True, result
    assert stages(result) == {
        "reachable": True,
        "tls": True,
        "authentication": True,
        "events": True,
        "snapshot": True,
    }


async def test_an_account_without_monitoring_rights_is_told_which_to_give() -> None:
    async with Intercom(user=USER, password=PASSWORD, privileges=frozenset({"io"})) as intercom:
        result = await check(source(intercom.url))
    assert result["ok"] is False
    events = next(stage for stage in result["stages"] if stage["stage"] == "events")
    assert events["ok"] is False
    assert "CardEntered" in events["message"] and "CallStateChanged" in events["message"]
    assert "Call/phone monitoring" in events["hint"] and "UID monitoring" in events["hint"]
    assert stages(result)["snapshot"] is False


async def test_a_wrong_password_fails_at_authentication() -> None:
    async with Intercom(user=USER, password=PASSWORD) as intercom:
        result = await check(source(intercom.url, password="wrong"))
    assert stages(result) == {"reachable": True, "tls": True, "authentication": False}
    assert result["stages"][-1]["hint"]


async def test_an_address_nobody_answers_fails_at_reachable() -> None:
    result = await check(source(f"http://127.0.0.1:{free_port()}"))
    assert stages(result) == {"reachable": False}


def test_device_status_test_and_metrics_over_the_api(api: TestClient) -> None:
    with IntercomThread(user=USER, password=PASSWORD) as intercom:
        body = {
            "id": "door-1",
            "name": "Door",
            "source": {"kind": "2n", "url": intercom.url, "username": USER, "password": PASSWORD},
        }
        assert api.post("/api/devices", json=body).status_code == 201
        assert api.post("/api/devices/door-1/test").json()["ok"] is True
        unsaved = {"source": {"password": "not-saved"}}
        tested = api.post("/api/devices/door-1/test", json=unsaved).json()
        assert stages(tested)["authentication"] is False
        assert api.get("/api/devices/door-1").json()["source"]["password_set"] is True
        service = api.app.state.service  # type: ignore[attr-defined]
        done = threading.Event()

        async def look() -> None:
            await service.intercoms.look()
            done.set()

        api.portal.call(look)  # type: ignore[union-attr]
        assert done.wait(5)
        status: dict[str, Any] = {}
        for _ in range(100):
            status = api.get("/api/devices/door-1/status").json()
            if status["state"] == "connected":
                break
            asyncio.run(asyncio.sleep(0.05))
        assert status["source"] == "2n" and status["state"] == "connected", status
        intercom.tamper()
        for _ in range(100):
            status = api.get("/api/devices/door-1/status").json()
            if status["events_received"]:
                break
            asyncio.run(asyncio.sleep(0.05))
        assert status["events_received"] == 1 and status["last_event_at"]
        metrics = api.get("/metrics").text
        assert 'doormail_source_up{device="door-1"} 1.0' in metrics
        assert (
            'doormail_source_events_total{device="door-1",event="tamper.activated"} 1.0' in metrics
        )
    assert api.get("/api/devices/nobody/status").status_code == 404
