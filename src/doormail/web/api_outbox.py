"""`/api/outbox` (SPEC section 8): the outbox newest first with a cursor, one entry, its exact
message bytes, a retry by hand for failed or expired mail, "Retry all now" for queued mail, and
the SMTP server's state (SPEC section 8, "The server as a whole")."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from doormail.outbox import STATUSES, Admin, NotRetryable, OutboxError, UnknownMessage
from doormail.web.errors import ApiError
from doormail.web.schemas import json_reply, refusal, text_reply
from doormail.web.state import service_of

router = APIRouter(prefix="/api/outbox", tags=["outbox"])


def _outbox(request: Request) -> Admin:
    return service_of(request).outbox


@contextmanager
def _answers() -> Iterator[None]:
    """The outbox's refusals as the API's error shape."""
    try:
        yield
    except UnknownMessage as error:
        raise ApiError(404, "not_found", error.message, error.field) from None
    except NotRetryable as error:
        raise ApiError(409, "conflict", error.message, error.field) from None
    except OutboxError as error:
        raise ApiError(422, "validation", error.message, error.field) from None


_ITEM = json_reply("OutboxItem", "the outbox entry")
_NO_ITEM = refusal("no outbox entry has this id")


@router.get(
    "",
    response_model=None,
    responses={
        200: json_reply("OutboxPage", "newest first"),
        422: refusal("a bad status, limit or cursor"),
    },
)
def list_outbox(
    request: Request,
    status: Annotated[
        str | None, Query(max_length=16, json_schema_extra={"enum": list(STATUSES)})
    ] = None,
    limit: Annotated[int, Query()] = 100,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
) -> dict[str, Any]:
    with _answers():
        page = _outbox(request).page(status, limit, cursor)
    server = service_of(request).server.status()
    return {
        "items": [item.public() for item in page.items],
        "next": page.next,
        "server": server.public(),
    }


@router.post("/retry", response_model=None, responses={200: json_reply("OutboxRetried", "due")})
def retry_all(request: Request) -> dict[str, Any]:
    """Retry all now: every queued mail due at once (its back-off starting again), and an
    unreachable SMTP server probed at once, as a change of the SMTP settings does."""
    service = service_of(request)
    queued = service.server.retry_now()
    service.worker.notify()
    return {"queued": queued}


@router.get("/{item_id}", response_model=None, responses={200: _ITEM, 404: _NO_ITEM})
def get_item(request: Request, item_id: str) -> dict[str, Any]:
    item = _outbox(request).get(item_id)
    if item is None:
        raise ApiError(404, "not_found", f"no outbox entry {item_id!r}", "id")
    return item.public()


@router.get(
    "/{item_id}/message",
    response_class=Response,
    responses={
        200: text_reply("message/rfc822", "the exact RFC 5322 bytes", binary=True),
        404: _NO_ITEM,
    },
)
def get_message(request: Request, item_id: str) -> Response:
    with _answers():
        data = _outbox(request).message(item_id)
    return Response(
        data,
        media_type="message/rfc822",
        headers={"Content-Disposition": f'inline; filename="{item_id}.eml"'},
    )


@router.post(
    "/{item_id}/retry",
    response_model=None,
    responses={200: _ITEM, 404: _NO_ITEM, 409: refusal("only failed or expired mail")},
)
def retry_item(request: Request, item_id: str) -> dict[str, Any]:
    """Queue the mail again, due now, with a new deadline of `smtp.deliver_in` from now."""
    service = service_of(request)
    deliver_in = service.settings.load().smtp.deliver_in
    with _answers():
        item = service.outbox.retry(item_id, deliver_in=deliver_in)
    service.worker.notify()
    return item.public()
