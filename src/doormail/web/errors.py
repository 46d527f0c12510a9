"""The native API's error shape, `{"error": {"code", "field", "message", "errors"}}`, for every
failure: our own, the settings model's, FastAPI's request validation, and anything unexpected (which is logged and answered without a stack trace)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route, compile_path

from doormail.settings import SettingsError
from doormail.store.failures import DATABASE_ERRORS, cause, unavailable

log = logging.getLogger("doormail.web")

# The `code` of each HTTP status the API answers with when no more precise code is known.
CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    503: "unavailable",
    415: "unsupported_media_type",
    422: "validation",
    429: "too_many_requests",
}


class ApiError(Exception):
    """An answer other than success, with its HTTP status and the field it is about."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    """The error shape; `errors` lists every bad field (by default the one named)."""
    if errors is None:
        errors = [] if field is None else [{"field": field, "message": message}]
    body = {"error": {"code": code, "field": field, "message": message, "errors": errors}}
    return JSONResponse(body, status_code=status, headers=headers)


def _field_of(loc: tuple[object, ...] | list[object]) -> str:
    parts = [str(part) for part in loc if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _message_of(detail: dict[str, Any]) -> str:
    return str(detail.get("msg", "invalid")).removeprefix("Value error, ")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route offers for the request's path (Starlette names only those of the
    first route it finds, while GET and PUT of one path are two routes here)."""
    path = request.url.path
    methods = set()
    for pattern, offered in _routes(request.app.router.routes):
        if pattern.fullmatch(path):
            methods |= offered
    return sorted(methods)


def _routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[re.Pattern[str], set[str]]]:
    """The path pattern and methods of every route, within included routers too."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            inner = prefix + getattr(getattr(route, "include_context", None), "prefix", "")
            yield from _routes(included.routes, inner)
        elif isinstance(route, Route) and route.methods:
            yield compile_path(prefix + route.path)[0], route.methods


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the error shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.code, error.message, error.field)

    @app.exception_handler(SettingsError)
    async def _settings_error(_request: Request, error: SettingsError) -> JSONResponse:
        every = [{"field": field, "message": message} for field, message in error.problems]
        return error_response(422, "validation", error.message, error.field, errors=every)

    @app.exception_handler(RequestValidationError)
    async def _request_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        details = list(error.errors())
        if details[0].get("type") == "json_invalid":
            return error_response(400, "bad_request", "the request body is not valid JSON", "body")
        every = [{"field": _field_of(d.get("loc", ())), "message": _message_of(d)} for d in details]
        first = every[0]
        return error_response(422, "validation", first["message"], first["field"], errors=every)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        status = error.status_code
        headers = dict(error.headers or {})
        if status == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return error_response(status, CODES.get(status, "http"), str(error.detail), headers=headers)

    async def _database_error(request: Request, error: Exception) -> JSONResponse:
        message = unavailable(error)
        if message is None:
            return await _unexpected(request, error)
        # A passing state of the database (disk full, server restarting): one line in the log
        # without a stack trace, and an answer that tells callers to try again.
        log.warning("%s %s: %s (%s)", request.method, request.url.path, message, cause(error))
        return error_response(503, "unavailable", message, headers={"Retry-After": "5"})

    for database_error in DATABASE_ERRORS:
        app.add_exception_handler(database_error, _database_error)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", "internal error; see the service log")
