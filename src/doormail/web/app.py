"""Builds the FastAPI application for a Service: error handling, authentication on every
router, and /healthz as the only open route."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import JSONResponse

from doormail.app import Service
from doormail.web import (
    api_actions,
    api_camera,
    api_certificates,
    api_config,
    api_events,
    api_metrics,
    api_outbox,
    api_smtp_test,
    api_templates,
    api_tokens,
    api_users,
    errors,
    ui,
)
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
]


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

    app = FastAPI(
        title="doormail", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.service = service
    app.state.passwords = PasswordGate(service.accounts)
    errors.install(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    for router in PROTECTED_ROUTERS:
        app.include_router(router, dependencies=[Depends(authenticate)])
    # The web UI checks its own session (redirecting to /login) and adds the session cookie.
    ui.install(app, service)
    return app
