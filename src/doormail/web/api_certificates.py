"""`/api/certificates`: list the certificate slots, upload PEM text into a user or CA slot,
empty a slot. Keys go in, never out."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from doormail.certificates import MAX_PEM_BYTES, SLOTS, CertificateError, is_slot
from doormail.web.errors import ApiError
from doormail.web.schemas import body_of, json_reply, refusal
from doormail.web.state import service_of

# The slots as the document lists them; an unknown one is answered 404 by `_known`.
Slot = Annotated[str, Path(json_schema_extra={"enum": list(SLOTS)})]

router = APIRouter(prefix="/api/certificates", tags=["certificates"])


_SLOT = json_reply("CertificateInfo", "the slot: subject, fingerprint and expiry, never a key")
_NO_SLOT = refusal("no such slot")
_PEM = {"schema": {"type": "string"}}


@router.get(
    "",
    response_model=None,
    responses={200: json_reply("CertificateList", "every slot, never a key")},
)
def list_certificates(request: Request) -> dict[str, Any]:
    slots = service_of(request).certificates.list()
    return {"certificates": [info.public() for info in slots]}


@router.put(
    "/{slot}",
    response_model=None,
    openapi_extra=body_of(media={"application/x-pem-file": _PEM, "text/plain": _PEM}),
    responses={
        200: _SLOT,
        404: _NO_SLOT,
        422: refusal("not PEM, a key that does not match, or a user slot without a key"),
    },
)
async def put_certificate(request: Request, slot: Slot) -> dict[str, Any]:
    """The PEM text is the raw body (application/x-pem-file or text/plain)."""
    _known(slot)
    body = await _body(request, slot)
    certificates = service_of(request).certificates
    try:
        info = await asyncio.to_thread(certificates.put, slot, body)
    except CertificateError as error:
        raise ApiError(422, "validation", error.message, field=error.field) from None
    return info.public()


@router.delete(
    "/{slot}",
    response_model=None,
    responses={200: _SLOT, 404: _NO_SLOT, 422: refusal("this slot cannot be emptied")},
)
def delete_certificate(request: Request, slot: Slot) -> dict[str, Any]:
    _known(slot)
    try:
        return service_of(request).certificates.delete(slot).public()
    except CertificateError as error:
        raise ApiError(422, "validation", error.message, field=error.field) from None


def _known(slot: str) -> None:
    if not is_slot(slot):
        raise ApiError(
            404,
            "not_found",
            f"no certificate slot {slot!r}; slots are self-signed, user1..3 and ca1..3",
            field="slot",
        )


async def _body(request: Request, slot: str) -> bytes:
    # Read with a cap so a huge upload is refused before it is held in memory whole.
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_PEM_BYTES:
            raise ApiError(
                422, "validation", f"the PEM text is larger than {MAX_PEM_BYTES} bytes", slot
            )
    if not body.strip():
        raise ApiError(422, "validation", "the body is empty; send the PEM text", slot)
    return bytes(body)
