"""Builds the FastAPI application for a Service: error handling, the request body limit,
authentication on every router, the OpenAPI document and its docs page, the web UI, the headers
every response carries, and /healthz as the only open route."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp

from doormail.app import Service
from doormail.web import (
    api_actions,
    api_camera,
    api_certificates,
    api_config,
    api_devices,
    api_dkim,
    api_events,
    api_metrics,
    api_outbox,
    api_smtp_test,
    api_sources,
    api_templates,
    api_tokens,
    api_users,
    bodies,
    errors,
    openapi,
    ui,
)
from doormail.web.bodies import MAX_REQUEST_BYTES, DeclaredLengthLimit
from doormail.web.headers import SecurityHeaders
from doormail.web.security import PasswordGate, authenticate

# Each router module registers itself here; every one of them needs authentication.
PROTECTED_ROUTERS: list[APIRouter] = [
    api_config.router,
    api_certificates.router,
    api_users.router,
    api_events.router,
    api_smtp_test.router,
    api_outbox.router,
    api_metrics.router,
    api_templates.router,
    api_camera.router,
    api_actions.router,
    api_tokens.router,
    api_dkim.router,
    api_devices.router,
    api_sources.router,
]


class DoormailApp(FastAPI):
    """FastAPI with two layers outside everything else, even the handler of unexpected errors:
    the security headers on every response, and the refusal of a body declared too large."""

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(DeclaredLengthLimit(super().build_middleware_stack()))


def create_app(service: Service) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(runner()) for runner in service.runners]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # The document and the docs page are served by `openapi`, behind authentication.
    app = DoormailApp(
        title="doormail",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
        max_body_size=MAX_REQUEST_BYTES,
    )
    app.state.service = service
    app.state.passwords = PasswordGate(service.accounts)
    errors.install(app)
    bodies.install(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    for router in PROTECTED_ROUTERS:
        app.include_router(router, dependencies=[Depends(authenticate)])
    openapi.install(app)
    # The web UI checks its own session (redirecting to /login) and adds the session cookie.
    ui.install(app, service)
    return app
