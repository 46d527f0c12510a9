"""DKIM on the SMTP tab of the web UI: the DNS TXT record to publish for the key in force, a new
key pair (RSA 2048 or Ed25519) made with one button, and the check of what DNS publishes. The
keys and the check are `doormail.dkimkey`'s; the private key is never shown."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from doormail import dkimkey
from doormail import settings as model
from doormail.web.api_dkim import new_key
from doormail.web.state import service_of
from doormail.web.ui_common import flash, read_form

router = APIRouter()
BACK = "/smtp#dkim"


@dataclass(frozen=True)
class DkimView:
    """What the SMTP tab shows of DKIM: the record, or why there is none yet."""

    record: dkimkey.DnsRecord | None
    missing: str | None
    enabled: bool
    # The domain and selector are set: a key can be made.
    ready: bool = True


def shown(settings: model.Settings) -> DkimView:
    dkim = settings.smtp.dkim
    for key, label in (("domain", "DKIM Domain"), ("selector", "DKIM Selector")):
        if not getattr(dkim, key):
            missing = f"Set the {label} (Beyond the manual) and apply, then make a key here."
            return DkimView(None, missing, dkim.enabled, ready=False)
    if not dkim.private_key:
        return DkimView(None, "No key yet: make one below.", dkim.enabled)
    return DkimView(dkimkey.dns_record(dkim), None, dkim.enabled)


@router.post("/smtp/dkim/key")
async def make_key(request: Request) -> Response:
    form = await read_form(request)
    algorithm = form.get("algorithm", "")
    if algorithm not in dkimkey.ALGORITHMS:
        flash(request, 'No key made: the algorithm must be "rsa" or "ed25519".', "alert")
        return RedirectResponse(BACK, status_code=303)
    store = service_of(request).settings
    try:
        record = await run_in_threadpool(new_key, store, algorithm)
    except model.SettingsError as error:
        flash(request, f"No key made: {error.field} {error.message}.", "alert")
    else:
        flash(request, f"New DKIM key made: publish the TXT record {record.dns_name} shown.")
    return RedirectResponse(BACK, status_code=303)


@router.post("/smtp/dkim/check")
async def check(request: Request) -> Response:
    await read_form(request)
    service = service_of(request)
    dkim = (await run_in_threadpool(service.settings.load)).smtp.dkim
    if not (dkim.private_key and dkim.domain and dkim.selector):
        flash(request, "Nothing to check: there is no DKIM key yet.", "alert")
        return RedirectResponse(BACK, status_code=303)
    result = await asyncio.to_thread(dkimkey.check, dkim, service.dkim_lookup)
    flash(request, f"{result.dns_name}: {result.message}.", "notice" if result.matches else "alert")
    return RedirectResponse(BACK, status_code=303)
