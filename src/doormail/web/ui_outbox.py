"""The Outbox tab of the web UI: the queued, sent, failed and expired mail filtered by state, one
message opened as it was sent (headers, body, snapshots and the exact source), and retrying a
failed or expired one. The queue itself is `doormail.outbox`'s."""

from __future__ import annotations

import base64
import email
import email.policy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from doormail.outbox import STATUSES, InvalidQuery, OutboxError
from doormail.web.state import service_of
from doormail.web.ui_common import flash, page, read_form, require_user
from doormail.web.ui_server import server_notice

router = APIRouter()

PAGE_SIZE = 50
SHOWN_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Auto-Submitted",
    "X-Doormail-Event",
)


def when(at: float | None) -> str:
    """A time of the outbox (UNIX seconds) for people: UTC, to the second."""
    if at is None:
        return ""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@router.get("/outbox")
def outbox_page(request: Request, status: str = "", cursor: str | None = None) -> Response:
    require_user(request)
    service = service_of(request)
    chosen = status if status in STATUSES else None
    try:
        found = service.outbox.page(chosen, PAGE_SIZE, cursor)
    except InvalidQuery:
        found = service.outbox.page(chosen, PAGE_SIZE, None)
    more = None
    if found.next is not None:
        more = "/outbox?" + urlencode({"status": chosen or "", "cursor": found.next})
    context: dict[str, Any] = {
        "title": "Outbox",
        "statuses": STATUSES,
        "status": chosen or "",
        "counts": service.outbox.counts(),
        "items": found.items,
        "more": more,
        "when": when,
        "server": server_notice(service),
    }
    return page(request, "outbox.html", context)


@dataclass
class Opened:
    """A stored message taken apart for showing; `source` is the exact text that was sent."""

    headers: list[tuple[str, str]]
    html: str | None
    text: str | None
    images: list[tuple[str, str]] = field(default_factory=list)  # (file name, data: URI)
    source: str = ""


def open_message(data: bytes) -> Opened:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    headers = [(name, str(message[name])) for name in SHOWN_HEADERS if message[name] is not None]
    html = _body_text(message, "html")
    text = _body_text(message, "plain")
    images = []
    for part in message.iter_attachments():
        if part.get_content_maintype() == "image" and isinstance(part, EmailMessage):
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                uri = f"data:{part.get_content_type()};base64,{base64.b64encode(payload).decode()}"
                images.append((part.get_filename() or "snapshot", uri))
                content_id = part["Content-ID"]
                if html is not None and content_id is not None:
                    # Shown as a mail app shows it: the pictures the HTML refers to, in place.
                    html = html.replace(f"cid:{str(content_id).strip('<> ')}", uri)
    source = data.decode("utf-8", errors="replace")
    return Opened(headers, html, text, images, source)


def _body_text(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_subtype() != subtype:
        return None
    content = part.get_content()
    return content if isinstance(content, str) else None


@router.get("/outbox/{item_id}")
async def message_page(request: Request, item_id: str) -> Response:
    require_user(request)
    outbox = service_of(request).outbox
    item = await run_in_threadpool(outbox.get, item_id)
    if item is None:
        missing: dict[str, Any] = {"title": "Outbox", "item": None, "missing": item_id}
        return page(request, "outbox_message.html", missing, status_code=404)
    data = await run_in_threadpool(outbox.message, item_id)
    context: dict[str, Any] = {
        "title": f"Mail to {item.to}",
        "item": item,
        "opened": await run_in_threadpool(open_message, data),
        "when": when,
        "missing": None,
    }
    return page(request, "outbox_message.html", context)


@router.get("/outbox/{item_id}/source")
async def message_source(request: Request, item_id: str) -> Response:
    """The exact bytes, to open in a mail program."""
    require_user(request)
    try:
        data = await run_in_threadpool(service_of(request).outbox.message, item_id)
    except OutboxError:
        return Response("no such mail", status_code=404, media_type="text/plain")
    disposition = f'attachment; filename="{_file_name(item_id)}.eml"'
    return Response(data, media_type="message/rfc822", headers={"Content-Disposition": disposition})


def _file_name(item_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in item_id)[:100] or "message"


@router.post("/outbox/{item_id}/retry")
async def retry(request: Request, item_id: str) -> Response:
    await read_form(request)
    service = service_of(request)
    try:
        deliver_in = (await run_in_threadpool(service.settings.load)).smtp.deliver_in
        await run_in_threadpool(service.outbox.retry, item_id, deliver_in=deliver_in)
    except OutboxError as error:
        flash(request, f"Not retried: {error.message}", "alert")
    else:
        service.worker.notify()
        flash(request, "Queued again; it is being sent now.")
    return RedirectResponse(f"/outbox/{item_id}", status_code=303)
