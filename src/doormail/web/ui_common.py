"""What every page of the web UI shares: the Jinja2 templates (autoescaped), the session's user
and CSRF token, the checks a page and a posted form go through, and the layout's context."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile
from starlette.templating import Jinja2Templates

from doormail.web.bodies import MAX_REQUEST_BYTES
from doormail.web.ui_fields import SETTINGS_TABS

HERE = Path(__file__).parent
CSRF_FIELD = "csrf_token"


def _settings_tab(slug: str) -> tuple[str, str]:
    return f"/{slug}", SETTINGS_TABS[slug].title


# The tabs in the manual's order, then doormail's own; (path, title).
NAVIGATION = (
    *map(_settings_tab, ("smtp", "email-on-call", "email-on-access", "email-on-event", "camera")),
    ("/certificates", "Certificates"),
    ("/users", "Users"),
    ("/outbox", "Outbox"),
    ("/events", "Events"),
    _settings_tab("device"),
    ("/devices", "Devices"),
)

templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
)


class LoginRequired(Exception):
    """Raised by a page without a logged-in session; answered with a redirect to /login."""


class CsrfRefused(Exception):
    """A form posted without this session's CSRF token."""


def session_user(request: Request) -> str | None:
    user = request.session.get("user")
    return user if isinstance(user, str) else None


def csrf_token(request: Request) -> str:
    """This session's CSRF token, made on first use."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def csrf_matches(request: Request, presented: object) -> bool:
    expected = request.session.get("csrf")
    return (
        isinstance(expected, str)
        and isinstance(presented, str)
        and hmac.compare_digest(expected.encode(), presented.encode())
    )


def require_user(request: Request) -> str:
    user = session_user(request)
    if user is None:
        raise LoginRequired()
    return user


async def read_form(request: Request) -> dict[str, str]:
    """The posted form's text fields, after the session and CSRF checks."""
    fields, _files = await read_form_with_files(request)
    return fields


async def read_form_with_files(request: Request) -> tuple[dict[str, str], dict[str, bytes]]:
    """The posted form's text fields and uploaded files, after the session and CSRF checks
    (the whole request is at most MAX_REQUEST_BYTES)."""
    require_user(request)
    form = await request.form(max_files=4, max_fields=200, max_part_size=MAX_REQUEST_BYTES)
    if not csrf_matches(request, form.get(CSRF_FIELD)):
        raise CsrfRefused()
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for key, value in form.multi_items():
        if isinstance(value, str):
            fields[key] = value
        elif isinstance(value, UploadFile) and value.filename:
            files[key] = await value.read()
    return fields, files


def flash(request: Request, text: str, kind: str = "notice", warnings: Sequence[str] = ()) -> None:
    """A notice ("notice" or "alert") for the next page of this session, after a redirect,
    with the warnings about what was just done (listed under it)."""
    request.session["flash"] = {"text": text, "kind": kind, "warnings": list(warnings)}


def page(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    """A UI page with the layout's context: who is logged in, the CSRF token, the tabs, and
    the notice left by the previous request."""
    notice = request.session.pop("flash", None) if "flash" in request.session else None
    if not isinstance(notice, dict):
        notice = None
    full = {
        "user": session_user(request),
        "csrf": csrf_token(request),
        "navigation": NAVIGATION,
        "current": request.url.path,
        "flash": notice,
        **context,
    }
    response = templates.TemplateResponse(request, name, full, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response
