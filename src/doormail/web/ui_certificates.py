"""The Certificates tab of the web UI: the self-signed certificate, the three user certificate
sets and the three CA sets, each with its subject, fingerprint and expiry; upload PEM, empty a
slot. Keys go in, never out; checking them is `doormail.certificates`' work."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from doormail.certificates import (
    CA_SLOTS,
    MAX_PEM_BYTES,
    SELF_SIGNED,
    USER_SLOTS,
    CertificateError,
    is_slot,
)
from doormail.web.state import service_of
from doormail.web.ui_common import flash, page, read_form_with_files, require_user

router = APIRouter()

_TITLES = {
    SELF_SIGNED: "SelfSigned",
    **{slot: f"User{slot[-1]}" for slot in USER_SLOTS},
    **{slot: f"CA{slot[-1]}" for slot in CA_SLOTS},
}


def _certificates_page(
    request: Request, errors: dict[str, str], status_code: int = 200
) -> Response:
    service = service_of(request)
    smtp = service.settings.load().smtp
    slots = {info.slot: info for info in service.certificates.list()}
    context: dict[str, Any] = {
        "title": "Certificates",
        "self_signed": slots[SELF_SIGNED],
        "user_slots": [slots[slot] for slot in USER_SLOTS],
        "ca_slots": [slots[slot] for slot in CA_SLOTS],
        "titles": _TITLES,
        "in_use": {smtp.certificate: "User Certificate of SMTP", smtp.ca: "CA of SMTP"},
        "errors": errors,
    }
    return page(request, "certificates.html", context, status_code)


@router.get("/certificates")
def certificates_page(request: Request) -> Response:
    require_user(request)
    return _certificates_page(request, {})


@router.post("/certificates/{slot}")
async def upload(request: Request, slot: str) -> Response:
    fields, files = await read_form_with_files(request)
    if not is_slot(slot) or slot == SELF_SIGNED:
        return _refused(request, slot, "this slot does not take uploads")
    pem = files.get("file") or fields.get("pem", "").encode()
    if not pem.strip():
        return _refused(request, slot, "choose a PEM file or paste the PEM text")
    if len(pem) > MAX_PEM_BYTES:
        return _refused(request, slot, f"the PEM text is larger than {MAX_PEM_BYTES} bytes")
    try:
        await run_in_threadpool(service_of(request).certificates.put, slot, pem)
    except CertificateError as error:
        return _refused(request, slot, error.message)
    flash(request, f"{_TITLES[slot]} stored.")
    return RedirectResponse(f"/certificates#{slot}", status_code=303)


@router.post("/certificates/{slot}/delete")
async def empty(request: Request, slot: str) -> Response:
    await read_form_with_files(request)
    if not is_slot(slot):
        return _refused(request, slot, "no such slot")
    try:
        await run_in_threadpool(service_of(request).certificates.delete, slot)
    except CertificateError as error:
        return _refused(request, slot, error.message)
    flash(request, f"{_TITLES[slot]} emptied.")
    return RedirectResponse(f"/certificates#{slot}", status_code=303)


def _refused(request: Request, slot: str, message: str) -> Response:
    # The pasted text is not shown again: it may hold a private key.
    key = slot if slot in _TITLES else "_form"
    return _certificates_page(request, {key: message}, status_code=422)
