"""`/api/dkim`: a new DKIM key pair for `smtp.dkim` (the private half stored as a secret, never
shown), the DNS TXT record to publish for it, and the check of what DNS publishes (SPEC
section 9)."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from doormail import dkimkey
from doormail import settings as model
from doormail.store.settings_store import SettingsStore
from doormail.web.bodies import json_body
from doormail.web.errors import ApiError
from doormail.web.schemas import body_of, json_reply, refusal
from doormail.web.state import service_of

router = APIRouter(prefix="/api/dkim", tags=["dkim"])
_NO_KEY = refusal("no key yet (POST /api/dkim/key makes one)")


@router.post(
    "/key",
    response_model=None,
    openapi_extra=body_of("DkimKeyRequest"),
    responses={
        200: json_reply("DkimRecord", "the new key's DNS TXT record to publish"),
        422: refusal("an unknown algorithm, or smtp.dkim.domain or .selector not set"),
    },
)
async def make_key(request: Request) -> dict[str, Any]:
    """A new key pair: the private key replaces `smtp.dkim.private_key`; the reply is the
    record that publishes its public half."""
    algorithm = _algorithm(await json_body(request))
    store = service_of(request).settings
    return asdict(await run_in_threadpool(new_key, store, algorithm))


@router.get(
    "/key",
    response_model=None,
    responses={
        200: json_reply("DkimRecord", "the DNS TXT record of the key in force"),
        404: _NO_KEY,
    },
)
async def get_record(request: Request) -> dict[str, Any]:
    dkim = _configured(await asyncio.to_thread(service_of(request).settings.load), 404)
    return asdict(dkimkey.dns_record(dkim))


@router.get(
    "/check",
    response_model=None,
    responses={
        200: json_reply("DkimCheck", "whether DNS publishes the key in force"),
        404: _NO_KEY,
    },
)
async def check(request: Request) -> dict[str, Any]:
    """Looks the selector's TXT record up and compares it with the key in force; "not
    published yet" when DNS has no record there."""
    service = service_of(request)
    dkim = _configured(await asyncio.to_thread(service.settings.load), 404)
    result = await asyncio.to_thread(dkimkey.check, dkim, service.dkim_lookup)
    return asdict(result)


def _algorithm(body: Any) -> dkimkey.Algorithm:
    if not isinstance(body, dict):
        raise ApiError(422, "validation", "must be a JSON object", "body")
    algorithm = body.get("algorithm")
    for known in dkimkey.ALGORITHMS:
        if algorithm == known:
            return known
    raise ApiError(422, "validation", 'must be "rsa" or "ed25519"', "algorithm")


def new_key(store: SettingsStore, algorithm: dkimkey.Algorithm) -> dkimkey.DnsRecord:
    """Make a key pair, store its private half as `smtp.dkim.private_key`, and return the
    record that publishes the public half (the API's and the SMTP tab's)."""
    settings = store.load()
    for key in ("domain", "selector"):
        if not getattr(settings.smtp.dkim, key):
            raise model.SettingsError(f"smtp.dkim.{key}", "must be set before a key is made")
    private_key = dkimkey.generate(algorithm)
    updated = model.apply_patch(settings, {"smtp": {"dkim": {"private_key": private_key}}})
    store.save(updated)
    return dkimkey.dns_record(updated.smtp.dkim)


def _configured(settings: model.Settings, status: int) -> model.Dkim:
    dkim = settings.smtp.dkim
    if not dkim.private_key:
        raise ApiError(
            status,
            "not_found",
            "no DKIM key yet: POST /api/dkim/key makes one",
            "smtp.dkim.private_key",
        )
    for key in ("domain", "selector"):
        if not getattr(dkim, key):
            raise ApiError(422, "validation", "must be set", f"smtp.dkim.{key}")
    return dkim
