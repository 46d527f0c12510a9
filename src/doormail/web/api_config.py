"""`/api/config`: the configuration document (SPEC section 2). GET shows secrets as `_set`
flags; PATCH merges, PUT replaces; either is validated as a whole and saved atomically.
`/api/config/warnings` lists what is valid but will not mail."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from doormail import settings as model
from doormail.config_warnings import config_warnings
from doormail.web.bodies import json_body
from doormail.web.errors import ApiError
from doormail.web.schemas import body_of, json_reply, refusal
from doormail.web.state import service_of

router = APIRouter(prefix="/api/config", tags=["config"])

_DOCUMENT: dict[int | str, dict[str, Any]] = {
    200: json_reply("Configuration", "the configuration, secrets shown as `_set`")
}
_CHANGED: dict[int | str, dict[str, Any]] = {
    **_DOCUMENT,
    422: refusal("a bad value (every one in `errors`); nothing was changed"),
}
_CHANGE = body_of("ConfigurationChange")


@router.get("", response_model=None, responses=_DOCUMENT)
def get_config(request: Request) -> dict[str, Any]:
    return service_of(request).settings.load().public()


@router.get(
    "/warnings",
    response_model=None,
    responses={200: json_reply("ConfigWarnings", "settings that are valid but will not mail")},
)
def get_warnings(request: Request) -> dict[str, Any]:
    """Settings that are valid but will not make the mail a user expects (SPEC section 2)."""
    settings = service_of(request).settings.load()
    return {"warnings": [warning.reply() for warning in config_warnings(settings)]}


@router.patch("", response_model=None, openapi_extra=_CHANGE, responses=_CHANGED)
async def patch_config(request: Request) -> dict[str, Any]:
    return await run_in_threadpool(_change, request, model.apply_patch, await _document(request))


@router.put("", response_model=None, openapi_extra=_CHANGE, responses=_CHANGED)
async def put_config(request: Request) -> dict[str, Any]:
    return await run_in_threadpool(_change, request, model.apply_replace, await _document(request))


def _change(
    request: Request,
    apply: Callable[[model.Settings, dict[str, Any]], model.Settings],
    document: dict[str, Any],
) -> dict[str, Any]:
    store = service_of(request).settings
    updated = apply(store.load(), document)
    store.save(updated)
    return updated.public()


async def _document(request: Request) -> dict[str, Any]:
    data = await json_body(request)
    if not isinstance(data, dict):
        raise ApiError(422, "validation", "must be a JSON object", "body")
    return data
