"""The settings web UI at `/`: login with the admin account, a signed session cookie carrying a
CSRF token and the account's session epoch (logout ends every session), and the manual's settings
tabs as server-rendered pages, changed through the same settings model as the API. The
certificates, users and outbox tabs live in their own modules."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware
from starlette.staticfiles import StaticFiles

from doormail import settings as model
from doormail.accounts import ADMIN
from doormail.app import Service
from doormail.config_warnings import ConfigWarning, config_warnings
from doormail.web import (
    ui_certificates,
    ui_devices,
    ui_dkim,
    ui_events,
    ui_outbox,
    ui_server,
    ui_users,
)
from doormail.web.security import (
    PasswordGate,
    SessionEpochs,
    TooManyAttempts,
    client_address,
)
from doormail.web.state import service_of
from doormail.web.ui_common import (
    CSRF_FIELD,
    HERE,
    CsrfRefused,
    LoginRequired,
    csrf_matches,
    flash,
    page,
    read_form,
    require_user,
    session_user,
)
from doormail.web.ui_fields import (
    CAMERA,
    SETTINGS_TABS,
    Tab,
    patch_from_form,
    shown_values,
    submitted_values,
)
from doormail.web.ui_words import in_ui_words, label_of

SESSION_COOKIE = "doormail_session"
SESSION_HOURS = 12

router = APIRouter(include_in_schema=False)


def install(app: FastAPI, service: Service) -> None:
    """Add the session cookie, the static files and the UI pages to `app`."""
    # Added first, so that it runs inside the session middleware and sees the decoded session.
    app.add_middleware(SessionEpochs, epoch_of=service.accounts.session_epoch)
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_key(service.paths.data_dir),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_HOURS * 3600,
        same_site="strict",
    )
    # Open without a session: the login page needs its stylesheet. Nothing here is secret.
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for pages in (
        router,
        ui_certificates.router,
        ui_users.router,
        ui_server.router,
        ui_outbox.router,
        ui_dkim.router,
        ui_events.router,
        ui_devices.router,
    ):
        app.include_router(pages, include_in_schema=False)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, _error: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.exception_handler(CsrfRefused)
    async def _csrf_refused(request: Request, _error: CsrfRefused) -> Response:
        return page(request, "refused.html", {"title": "Form expired"}, status_code=403)


def session_key(data_dir: Path) -> str:
    """The key that signs session cookies, kept in the data folder so that sessions survive a
    restart; made on first use, readable by the owner only."""
    path = data_dir / "session.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=data_dir, prefix=".session.key.")
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(secrets.token_urlsafe(48))
        try:
            # A hard link appears whole or not at all, and fails if another process won the race.
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    return path.read_text(encoding="ascii").strip()


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
        return _login_refused(request, target, "The form had expired; please log in again.")
    gate: PasswordGate = request.app.state.passwords
    name = fields.get("username", ADMIN).strip() or ADMIN
    try:
        valid = await gate.check(name, fields.get("password", ""), client_address(request))
    except TooManyAttempts as refused:
        error = f"Too many attempts; please try again in {refused.seconds} seconds."
        response = _login_refused(request, target, error, status_code=429)
        response.headers["Retry-After"] = str(refused.seconds)
        return response
    if not valid:
        return _login_refused(request, target, "Wrong user name or password.")
    epoch = await run_in_threadpool(service_of(request).accounts.session_epoch, name)
    # A fresh token on login, so that a token seen before logging in is worth nothing after.
    request.session.clear()
    request.session["user"] = name
    request.session["epoch"] = epoch
    request.session["csrf"] = secrets.token_urlsafe(32)
    return RedirectResponse(target, status_code=303)


def _login_refused(request: Request, target: str, error: str, status_code: int = 401) -> Response:
    context = {"title": "Log in", "next": target, "error": error}
    return page(request, "login.html", context, status_code=status_code)


@router.post("/logout")
async def logout(request: Request) -> Response:
    await read_form(request)
    # Every session of the account ends, not only this browser's: a copy of the cookie taken
    # earlier (or another device left logged in) is worth nothing after.
    await run_in_threadpool(service_of(request).accounts.end_sessions, require_user(request))
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
    warnings: Sequence[ConfigWarning] = (),
) -> Response:
    context = {
        "title": tab.title,
        "tab": tab,
        "values": values,
        "errors": errors,
        "server": ui_server.server_notice(service_of(request)) if tab.slug == "smtp" else None,
        "warnings": warnings,
    }
    if tab.slug == "smtp":
        context["dkim"] = ui_dkim.shown(service_of(request).settings.load())
    return page(request, "settings.html", context, status_code)


def _tab_warnings(tab: Tab, settings: model.Settings) -> list[ConfigWarning]:
    """The warnings about the settings this tab shows (GET /api/config/warnings's)."""
    on_tab = {f.path for f in tab.fields}
    return [warning for warning in config_warnings(settings) if warning.field in on_tab]


def _at_fields(tab: Tab, error: model.SettingsError) -> dict[str, str]:
    """Every problem at its field on the tab; those of fields elsewhere together at the top."""
    on_tab = {f.path for f in tab.fields}
    errors = {field: in_ui_words(message) for field, message in error.problems if field in on_tab}
    elsewhere = [
        in_ui_words(f"{field}: {message}")
        for field, message in error.problems
        if field not in on_tab
    ]
    if elsewhere:
        errors["_form"] = "; ".join(elsewhere)
    return errors


def _show_tab(tab: Tab) -> Any:
    def show(request: Request) -> Response:
        require_user(request)
        settings = service_of(request).settings.load()
        values = shown_values(tab, settings.public())
        return _settings_page(request, tab, values, {}, warnings=_tab_warnings(tab, settings))

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
                every = [
                    {"field": field, "label": label_of(field), "message": in_ui_words(text)}
                    for field, text in error.problems
                ]
                body = {"code": "validation", "field": error.field, "message": every[0]["message"]}
                return JSONResponse({"error": body | {"errors": every}}, status_code=422)
            values = submitted_values(tab, form, current.public())
            return _settings_page(request, tab, values, _at_fields(tab, error), status_code=422)
        await run_in_threadpool(store.save, updated)
        if tab is CAMERA:
            # The capture follows the settings on its own within seconds; the installer who
            # just pressed Apply wants to see the new camera now.
            await service_of(request).camera.refresh()
        if wants_json:
            shown = shown_values(tab, updated.public())
            secrets_set = {f.path: shown[f.path] for f in tab.fields if f.kind == "secret"}
            return JSONResponse({"saved": True, "secrets": secrets_set})
        flash(request, "Settings saved.")
        return RedirectResponse(f"/{tab.slug}", status_code=303)

    return save


for _tab in SETTINGS_TABS.values():
    router.add_api_route(f"/{_tab.slug}", _show_tab(_tab), methods=["GET"])
    router.add_api_route(f"/{_tab.slug}", _save_tab(_tab), methods=["POST"])
