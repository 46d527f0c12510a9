"""`/api/devices` (SPEC 11): the devices as JSON, create, read, replace, change and delete.
Validation lives in `doormail.devices.model`; secrets are write-only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from doormail.devices.model import DeviceError, DeviceModel, merged, parse_device
from doormail.devices.store import DeviceStore, DuplicateDevice
from doormail.web.bodies import json_body
from doormail.web.errors import ApiError
from doormail.web.schemas import body_of, json_reply, refusal
from doormail.web.state import service_of

router = APIRouter(prefix="/api/devices", tags=["devices"])

_DEVICE = json_reply("DeviceReply", "the device, secrets shown as `<name>_set`")
_NO_DEVICE = refusal("no device has this id")
_BAD_DEVICE = refusal("a bad value, naming the field")


def _devices(request: Request) -> DeviceStore:
    return service_of(request).devices


def _parsed(data: object, earlier: DeviceModel | None = None) -> DeviceModel:
    try:
        return parse_device(data, earlier)
    except DeviceError as error:
        raise ApiError(422, "validation", error.message, error.field) from None


def _existing(request: Request, device_id: str) -> DeviceModel:
    device = _devices(request).by_id(device_id)
    if device is None:
        raise ApiError(404, "not_found", f"no device with id {device_id!r}", "id")
    return device


@router.get("", response_model=None, responses={200: json_reply("Devices", "every device")})
def list_devices(request: Request) -> list[dict[str, Any]]:
    return [device.public() for device in _devices(request).all().values()]


@router.post(
    "",
    status_code=201,
    response_model=None,
    openapi_extra=body_of("DeviceIn"),
    responses={201: _DEVICE, 409: refusal("a device with this id exists"), 422: _BAD_DEVICE},
)
async def create_device(request: Request) -> dict[str, Any]:
    device = _parsed(await json_body(request))
    try:
        await run_in_threadpool(_devices(request).create, device)
    except DuplicateDevice as error:
        raise ApiError(409, "conflict", str(error), "id") from None
    return device.public()


@router.get("/{device_id}", response_model=None, responses={200: _DEVICE, 404: _NO_DEVICE})
def get_device(request: Request, device_id: str) -> dict[str, Any]:
    return _existing(request, device_id).public()


async def _save(request: Request, device_id: str, data: object, earlier: DeviceModel) -> Any:
    if isinstance(data, dict) and data.setdefault("id", device_id) != device_id:
        raise ApiError(422, "validation", "must match the id in the path", "id")
    device = _parsed(data, earlier)
    if not await run_in_threadpool(_devices(request).replace, device):
        raise ApiError(404, "not_found", f"no device with id {device_id!r}", "id")
    return device.public()


@router.put(
    "/{device_id}",
    response_model=None,
    openapi_extra=body_of("DeviceIn"),
    responses={200: _DEVICE, 404: _NO_DEVICE, 422: _BAD_DEVICE},
)
async def put_device(request: Request, device_id: str) -> dict[str, Any]:
    earlier = _existing(request, device_id)
    result: dict[str, Any] = await _save(request, device_id, await json_body(request), earlier)
    return result


@router.patch(
    "/{device_id}",
    response_model=None,
    openapi_extra=body_of(media={"application/json": {"schema": {"type": "object"}}}),
    responses={200: _DEVICE, 404: _NO_DEVICE, 422: _BAD_DEVICE},
)
async def patch_device(request: Request, device_id: str) -> dict[str, Any]:
    earlier = _existing(request, device_id)
    try:
        document = merged(earlier, await json_body(request))
    except DeviceError as error:
        raise ApiError(422, "validation", error.message, error.field) from None
    result: dict[str, Any] = await _save(request, device_id, document, earlier)
    return result


@router.delete(
    "/{device_id}",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "deleted"}, 404: _NO_DEVICE},
)
def delete_device(request: Request, device_id: str) -> Response:
    if not _devices(request).delete(device_id):
        raise ApiError(404, "not_found", f"no device with id {device_id!r}", "id")
    return Response(status_code=204)


@router.get(
    "/{device_id}/status",
    response_model=None,
    responses={200: json_reply("SourceStatusReply", "its event source"), 404: _NO_DEVICE},
)
def device_status(request: Request, device_id: str) -> dict[str, Any]:
    device = _existing(request, device_id)
    return service_of(request).intercoms.status(device).public()


@router.post(
    "/{device_id}/test",
    response_model=None,
    openapi_extra=body_of(
        media={"application/json": {"schema": {"type": "object"}}}, required=False
    ),
    responses={
        200: json_reply("DeviceTestReply", "each stage of the test, with a hint"),
        404: _NO_DEVICE,
        422: _BAD_DEVICE,
    },
)
async def test_device(request: Request, device_id: str) -> dict[str, Any]:
    """Test the device's source as stored, or with the changes of an optional body (as a
    PATCH would make them, not saved): the way Apply & Test tests unsaved SMTP settings."""
    device = _existing(request, device_id)
    if await request.body():
        try:
            device = parse_device(merged(device, await json_body(request)), device)
        except DeviceError as error:
            raise ApiError(422, "validation", error.message, error.field) from None
    if device.source is None:
        stage = {
            "stage": "source",
            "ok": False,
            "message": "the device has no event source",
            "hint": 'Give it a source: {"kind": "2n", "url", "username", "password"}.',
        }
        return {"ok": False, "stages": [stage]}
    from doormail.sources import intercom2n_check  # httpx: loaded when first used

    return await intercom2n_check.check(device.source)
