"""The native API's error shape, `{"error": {"code", "field", "message"}}`, for every failure:
our own, the settings model's, FastAPI's request validation, and anything unexpected (which is
logged and answered without a stack trace)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from doormail.settings import SettingsError

log = logging.getLogger("doormail.web")


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
) -> JSONResponse:
    body = {"error": {"code": code, "field": field, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def _field_of(loc: tuple[object, ...] | list[object]) -> str:
    parts = [str(part) for part in loc if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the error shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.code, error.message, error.field)

    @app.exception_handler(SettingsError)
    async def _settings_error(_request: Request, error: SettingsError) -> JSONResponse:
        return error_response(422, "validation", error.message, error.field)

    @app.exception_handler(RequestValidationError)
    async def _request_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        if first.get("type") == "json_invalid":
            return error_response(400, "bad_request", "the request body is not valid JSON", "body")
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        return error_response(422, "validation", message, _field_of(first.get("loc", ())))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        codes = {
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
            429: "too_many_requests",
        }
        return error_response(
            error.status_code,
            codes.get(error.status_code, "http"),
            str(error.detail),
            headers=dict(error.headers or {}),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", "internal error; see the service log")
