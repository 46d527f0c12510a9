"""The Devices tab of the web UI (SPEC 11): every device with its event source's status (live,
from `GET /api/devices/{id}/status`), adding a 2N intercom, testing and deleting a device, and
the MQTT subscription's status. Validation is `doormail.devices.model`'s."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from doormail.devices.model import DeviceError, parse_device
from doormail.devices.store import DuplicateDevice
from doormail.web.state import service_of
from doormail.web.ui_common import flash, page, read_form, require_user

router = APIRouter()
FORM_FIELDS = ("id", "name", "serial", "licenses", "url", "username", "password")


def _device_from_form(form: dict[str, str]) -> Any:
    licenses = [part.strip() for part in form.get("licenses", "").split(",") if part.strip()]
    data: dict[str, Any] = {
        "id": form.get("id", "").strip(),
        "name": form.get("name", "").strip(),
        "serial": form.get("serial", "").strip(),
        "licenses": licenses,
        "source": None,
    }
    if form.get("url", "").strip():
        data["source"] = {
            "kind": "2n",
            "url": form["url"].strip(),
            "username": form.get("username", ""),
            "password": form.get("password", ""),
            "verify_certificate": form.get("verify_certificate") == "on",
        }
    return parse_device(data)


def _devices_page(
    request: Request,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    tested: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    service = service_of(request)
    devices = list(service.devices.all().values())
    rows = [(device, service.intercoms.status(device).public()) for device in devices]
    context: dict[str, Any] = {
        "title": "Devices",
        "rows": rows,
        "mqtt": service.mqtt.status.public(),
        "mqtt_enabled": service.settings.load().sources.mqtt.enabled,
        "values": values or {"verify_certificate": "on"},
        "errors": errors or {},
        "tested": tested,
    }
    return page(request, "devices.html", context, status_code=status_code)


@router.get("/devices")
def devices_page(request: Request) -> Response:
    require_user(request)
    return _devices_page(request)


@router.post("/devices/new")
async def add_device(request: Request) -> Response:
    form = await read_form(request)
    try:
        device = _device_from_form(form)
        await run_in_threadpool(service_of(request).devices.create, device)
    except DeviceError as error:
        field = error.field.removeprefix("source.").split(".")[0]
        key = field if field in FORM_FIELDS else "id"
        values = {k: v for k, v in form.items() if k != "password"}
        return _devices_page(request, values, {key: error.message}, status_code=422)
    except DuplicateDevice as error:
        values = {k: v for k, v in form.items() if k != "password"}
        return _devices_page(request, values, {"id": str(error)}, status_code=409)
    flash(request, f"Device {device.id} added.")
    return RedirectResponse("/devices", status_code=303)


@router.post("/devices/{device_id}/test")
async def test_device(request: Request, device_id: str) -> Response:
    await read_form(request)
    device = service_of(request).devices.by_id(device_id)
    if device is None or device.source is None:
        flash(request, f"Device {device_id} has no 2N intercom to test.", "alert")
        return RedirectResponse("/devices", status_code=303)
    from doormail.sources import intercom2n_check  # httpx: loaded when first used

    result = await intercom2n_check.check(device.source)
    return _devices_page(request, tested={"id": device_id, **result})


@router.post("/devices/{device_id}/delete")
async def delete_device(request: Request, device_id: str) -> Response:
    await read_form(request)
    if await run_in_threadpool(service_of(request).devices.delete, device_id):
        flash(request, f"Device {device_id} deleted.")
    return RedirectResponse("/devices", status_code=303)
