"""The SMTP server's state as the Outbox and SMTP tabs show it (SPEC section 8): "SMTP server
unreachable since 15:02 — 3,000 mails waiting", with the last error and its hint, and the
"Retry all now" button's route. The state itself is `doormail.outbox.server`'s."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from doormail.app import Service
from doormail.web.state import service_of
from doormail.web.ui_common import flash, read_form

router = APIRouter()


@dataclass(frozen=True)
class ServerNotice:
    """What the tabs say about an unreachable server (nothing is shown while it answers)."""

    headline: str
    last_error: str | None
    hint: str | None


def server_notice(service: Service) -> ServerNotice | None:
    """The notice for the tabs, or None while the server answers; the time in the device's
    time zone, as the mails' $DateTime$."""
    status = service.server.status()
    headline = status.headline(ZoneInfo(service.settings.load().device.timezone))
    if headline is None:
        return None
    return ServerNotice(headline, status.last_error, status.hint)


@router.post("/outbox/retry")
async def retry_all(request: Request) -> Response:
    """Retry all now: every queued mail due at once, an unreachable server probed now."""
    await read_form(request)
    service = service_of(request)
    queued = await run_in_threadpool(service.server.retry_now)
    service.worker.notify()
    flash(request, f"{queued:,} queued mail(s) are being sent now.")
    return RedirectResponse("/outbox", status_code=303)
