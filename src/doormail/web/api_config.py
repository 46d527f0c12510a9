"""`/api/config`: the configuration document (SPEC section 2). GET shows secrets as `_set`
flags; PATCH merges, PUT replaces; either is validated as a whole and saved atomically."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request

from doormail import settings as model
from doormail.web.state import service_of

router = APIRouter(prefix="/api/config", tags=["config"])


@router.get("")
def get_config(request: Request) -> dict[str, Any]:
    return service_of(request).settings.load().public()


@router.patch("")
def patch_config(request: Request, patch: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    store = service_of(request).settings
    updated = model.apply_patch(store.load(), patch)
    store.save(updated)
    return updated.public()


@router.put("")
def put_config(request: Request, document: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    store = service_of(request).settings
    updated = model.apply_replace(store.load(), document)
    store.save(updated)
    return updated.public()
