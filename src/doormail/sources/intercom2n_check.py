"""The test of a 2N device's source (`POST /api/devices/{id}/test`, SPEC 11), the way Apply &
Test checks SMTP: reachable, TLS, authentication, which mapped events the API account may see
(`/api/log/caps`: an account without the monitoring rights silently gets no call or card
events), and a camera snapshot; each stage with a hint. Done within CHECK_SECONDS."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from doormail.devices.model import Intercom2N
from doormail.sources.intercom2n_api import IntercomError, call, client_for, picture
from doormail.sources.intercom2n_log import FILTER

CHECK_SECONDS = 14.0
STEP_SECONDS = 5.0
# The intercom's account privileges that show each mapped event (HTTP API manual, 4 User
# Accounts): calls and SIP registration need Call/phone monitoring, credentials UID monitoring.
RIGHTS = {
    "CallStateChanged": "Call/phone monitoring",
    "RegistrationStateChanged": "Call/phone monitoring",
    "CardEntered": "UID monitoring",
    "FingerEntered": "UID monitoring",
    "MobKeyEntered": "UID monitoring",
    "UserAuthenticated": "UID monitoring",
    "UserRejected": "UID monitoring",
}
HINTS = {
    "reachable": "Check the intercom's address, that it is on, and that doormail can reach it.",
    "tls": "Install a certificate the system trusts on the intercom, or set verify_certificate "
    "to false.",
    "authentication": "Check the API account's username and password (Services > HTTP API > "
    "Account) and that it may use the System and Logging services.",
}
Stage = dict[str, Any]


def _stage(stage: str, ok: bool, message: str, hint: str = "") -> Stage:
    return {"stage": stage, "ok": ok, "message": message, "hint": hint}


async def check(source: Intercom2N) -> dict[str, Any]:
    """`{"ok", "stages": [{"stage", "ok", "message", "hint"}]}`."""
    stages: list[Stage] = []
    try:
        await asyncio.wait_for(_check(source, stages), CHECK_SECONDS)
    except TimeoutError:
        stages.append(
            _stage("reachable", False, "the intercom did not answer in time", HINTS["reachable"])
        )
    return {"ok": bool(stages) and all(s["ok"] for s in stages), "stages": stages}


async def _check(source: Intercom2N, stages: list[Stage]) -> None:
    async with client_for(source, timeout=STEP_SECONDS) as client:
        try:
            info = await call(client, "/api/system/info")
        except IntercomError as error:
            _failed(source, error, stages)
            return
        _reached(source, stages)
        variant = info.get("variant", "2N intercom")
        stages.append(
            _stage("authentication", True, f"{variant}, serial {info.get('serialNumber')}")
        )
        stages.append(await _events(client))
        stages.append(await _snapshot(client))


def _reached(source: Intercom2N, stages: list[Stage]) -> None:
    stages.append(_stage("reachable", True, f"{source.url} answers"))
    if source.url.lower().startswith("https://"):
        verified = (
            "verified" if source.verify_certificate else "not verified (verify_certificate off)"
        )
        stages.append(_stage("tls", True, f"TLS, the certificate {verified}"))
    else:
        stages.append(_stage("tls", True, "plain HTTP: no TLS (the password travels as Digest)"))


def _failed(source: Intercom2N, error: IntercomError, stages: list[Stage]) -> None:
    if error.stage == "reach":
        stages.append(_stage("reachable", False, str(error), HINTS["reachable"]))
        return
    if error.stage == "tls":
        stages.append(_stage("reachable", True, f"{source.url} answers"))
        stages.append(_stage("tls", False, str(error), HINTS["tls"]))
        return
    _reached(source, stages)
    stages.append(_stage("authentication", False, str(error), HINTS["authentication"]))


async def _events(client: httpx.AsyncClient) -> Stage:
    try:
        caps = await call(client, "/api/log/caps")
    except IntercomError as error:
        return _stage("events", False, str(error), "Enable the HTTP API's Logging service.")
    seen = {str(name) for name in caps.get("events", [])}
    missing = [name for name in FILTER if name not in seen]
    if not missing:
        return _stage("events", True, "the account sees every mapped event: " + ", ".join(FILTER))
    rights = sorted({RIGHTS.get(name, "monitoring") for name in missing})
    return _stage(
        "events",
        False,
        "the account does not see " + ", ".join(missing),
        "Give the API account the " + " and ".join(rights) + " rights (Services > HTTP API > "
        "Account); without them the intercom silently sends no such events.",
    )


async def _snapshot(client: httpx.AsyncClient) -> Stage:
    try:
        jpeg = await picture(client, {"width": 640, "height": 480})
    except IntercomError as error:
        hint = "Give the API account the Camera right, or give the device a camera of its own."
        return _stage("snapshot", False, str(error), hint)
    return _stage("snapshot", True, f"a 640x480 picture of {len(jpeg)} bytes")
