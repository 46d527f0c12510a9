"""The settings web UI at `/`: login with the admin account, a signed session cookie with a CSRF
token, and the manual's tabs as server-rendered pages. Settings are changed through the same
model as the API; the other tabs call the service's parts or, from the page, the HTTP API."""

from __future__ import annotations

import asyncio
import hmac
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from doormail import settings as model
from doormail.accounts import ADMIN
from doormail.app import Service
from doormail.web.security import FailureThrottle
from doormail.web.state import service_of
from doormail.web.ui_fields import (
    SETTINGS_TABS,
    Tab,
    patch_from_form,
    shown_values,
    submitted_values,
)

_HERE = Path(__file__).parent
SESSION_COOKIE = "doormail_session"
SESSION_HOURS = 12
CSRF_FIELD = "csrf_token"

# The tabs in the manual's order, then doormail's own; (path, title).
NAVIGATION = (
    ("/smtp", "SMTP"),
    ("/email-on-call", "E-Mail on Call"),
    ("/email-on-access", "E-Mail on Access"),
    ("/email-on-event", "E-Mail on Event"),
    ("/camera", "Camera"),
    ("/certificates", "Certificates"),
    ("/users", "Users"),
    ("/outbox", "Outbox"),
    ("/device", "Device"),
)

templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
)
router = APIRouter(include_in_schema=False)


class LoginRequired(Exception):
    """Raised by a page without a logged-in session; answered with a redirect to /login."""


class CsrfRefused(Exception):
    """A form posted without this session's CSRF token."""


def install(app: FastAPI, service: Service) -> None:
    """Add the session cookie, the static files and the UI pages to `app`."""
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_key(service.paths.data_dir),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_HOURS * 3600,
        same_site="lax",
    )
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    app.include_router(router)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, _error: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.exception_handler(CsrfRefused)
    async def _csrf_refused(request: Request, _error: CsrfRefused) -> Response:
        return templates.TemplateResponse(
            request,
            "refused.html",
            {"title": "Form expired", "csrf": csrf_token(request)},
            status_code=403,
        )


def session_key(data_dir: Path) -> str:
    """The key that signs session cookies, kept in the data folder so that sessions survive a
    restart; created on first use, readable by the owner only."""
    path = data_dir / "session.key"
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it meanwhile: use theirs
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(key)
    return key


# -- session and CSRF ---------------------------------------------------------------------------


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


def csrf_matches(request: Request, presented: str | None) -> bool:
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
    """The posted form (text fields only) after the session and CSRF checks."""
    require_user(request)
    form = await request.form()
    if not csrf_matches(request, _text(form.get(CSRF_FIELD))):
        raise CsrfRefused()
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def page(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    """A UI page with the layout's context: who is logged in, the CSRF token, the tabs."""
    full = {
        "user": session_user(request),
        "csrf": csrf_token(request),
        "navigation": NAVIGATION,
        "current": request.url.path,
        **context,
    }
    response = templates.TemplateResponse(request, name, full, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


# -- login ----------------------------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    # Only paths on this site: "//host" and "/\host" would leave it.
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    if session_user(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return page(request, "login.html", {"title": "Log in", "next": _safe_next(next), "error": None})


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    target = _safe_next(fields.get("next"))
    if not csrf_matches(request, fields.get(CSRF_FIELD)):
        return _login_refused(request, target, "The form had expired. Please log in again.")
    client = request.client.host if request.client else "unknown"
    throttle: FailureThrottle = request.app.state.throttle
    name = fields.get("username", ADMIN).strip() or ADMIN
    accounts = service_of(request).accounts
    valid = name == ADMIN and await run_in_threadpool(
        accounts.check_password, name, fields.get("password", "")
    )
    if not valid:
        await asyncio.sleep(throttle.delay(client))
        throttle.failed(client)
        return _login_refused(request, target, "Wrong user name or password.")
    throttle.succeeded(client)
    # A fresh token on login, so a token seen before login is worth nothing after it.
    request.session.clear()
    request.session["user"] = name
    request.session["csrf"] = secrets.token_urlsafe(32)
    return RedirectResponse(target, status_code=303)


def _login_refused(request: Request, target: str, error: str) -> Response:
    context = {"title": "Log in", "next": target, "error": error}
    return page(request, "login.html", context, status_code=401)


@router.post("/logout")
async def logout(request: Request) -> Response:
    await read_form(request)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.get("/")
def home(request: Request) -> Response:
    require_user(request)
    return RedirectResponse("/smtp", status_code=303)


# -- settings tabs --------------------------------------------------------------------------------


def _settings_page(
    request: Request,
    tab: Tab,
    values: dict[str, Any],
    errors: dict[str, str],
    status_code: int = 200,
) -> Response:
    context = {
        "title": tab.title,
        "tab": tab,
        "values": values,
        "errors": errors,
        "saved": request.query_params.get("saved") == "1",
    }
    return page(request, "settings.html", context, status_code)


def _show_tab(tab: Tab) -> Any:
    def show(request: Request) -> Response:
        require_user(request)
        public = service_of(request).settings.load().public()
        return _settings_page(request, tab, shown_values(tab, public), {})

    return show


def _save_tab(tab: Tab) -> Any:
    async def save(request: Request) -> Response:
        form = await read_form(request)
        wants_json = "application/json" in request.headers.get("accept", "")
        store = service_of(request).settings
        current = await run_in_threadpool(store.load)
        try:
            updated = model.apply_patch(current, patch_from_form(tab, form))
        except model.SettingsError as error:
            if wants_json:
                body = {
                    "error": {"code": "validation", "field": error.field, "message": error.message}
                }
                return JSONResponse(body, status_code=422)
            values = submitted_values(tab, form, current.public())
            known = {f.path for f in tab.fields}
            key = error.field if error.field in known else "_form"
            message = error.message if key != "_form" else f"{error.field}: {error.message}"
            return _settings_page(request, tab, values, {key: message}, status_code=422)
        await run_in_threadpool(store.save, updated)
        if wants_json:
            return JSONResponse({"saved": True})
        return RedirectResponse(f"/{tab.slug}?saved=1", status_code=303)

    return save


for _tab in SETTINGS_TABS.values():
    router.add_api_route(f"/{_tab.slug}", _show_tab(_tab), methods=["GET"])
    router.add_api_route(f"/{_tab.slug}", _save_tab(_tab), methods=["POST"])
