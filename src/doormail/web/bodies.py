"""Request bodies: the one size limit of the HTTP side, refused with 413 before anything is
read when the request declares a larger Content-Length (Starlette's limit, which FastAPI applies
to the whole application, counts the bytes of a body without one as they stream in); JSON read
into plain data; and a body that cannot be read answered with a 400 naming it. It does not
validate what the JSON says."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from doormail.web.errors import ApiError, error_response

# The largest request body: a users list of 50,000 lines or a whole configuration fits easily;
# nothing larger is held in memory.
MAX_REQUEST_BYTES = 8 * 1024 * 1024
TOO_LARGE = f"the request body is larger than {MAX_REQUEST_BYTES} bytes"
# The deepest JSON any request needs is a handful of levels (smtp.oauth2.token_url).
MAX_JSON_DEPTH = 32


def body_problem(error: BaseException | None) -> str:
    """What is wrong with a body that could not be read as JSON, in the caller's words."""
    if isinstance(error, RecursionError):
        return "the request body is JSON nested too deeply"
    if isinstance(error, UnicodeDecodeError):
        return "the request body is not UTF-8 text"
    return "the request body is not valid JSON"


async def json_body(request: Request) -> object:
    """The body parsed as JSON; a 400 naming the body when it is not JSON, not UTF-8, or
    nested deeper than MAX_JSON_DEPTH (Python's json module follows about a thousand levels,
    then raises RecursionError, which is not a ValueError; what follows a few hundred levels
    in turn, such as copying a document, would fail on the way)."""
    try:
        data: object = await request.json()
    except (ValueError, RecursionError) as error:
        raise ApiError(400, "bad_request", body_problem(error), "body") from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise ApiError(400, "bad_request", body_problem(RecursionError()), "body")
    return data


def _depth(data: object) -> int:
    """How deeply arrays and objects nest in `data`, counted without recursion."""
    deepest = 0
    pending: list[tuple[object, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            deepest = max(deepest, depth)
            pending.extend((child, depth + 1) for child in value)
    return deepest


def install(app: FastAPI) -> None:
    """Answer a body that cannot be read, or is too large, in the error shape (the limit
    itself is FastAPI's `max_body_size`, set to MAX_REQUEST_BYTES by `create_app`)."""

    @app.exception_handler(400)
    async def _unreadable(_request: Request, error: Exception) -> JSONResponse:
        # FastAPI's "There was an error parsing the body" carries what went wrong as its cause;
        # Starlette's form parser says it in the detail.
        assert isinstance(error, HTTPException)
        cause = error.__cause__
        message = body_problem(cause) if cause is not None else str(error.detail)
        return error_response(400, "bad_request", message, "body")

    @app.exception_handler(413)
    async def _too_large(_request: Request, _error: Exception) -> JSONResponse:
        return error_response(413, "too_large", TOO_LARGE, "body")


class DeclaredLengthLimit:
    """Answers 413 to a request whose Content-Length is over MAX_REQUEST_BYTES before the
    application runs: neither the body nor the route is touched (a route that never reads its
    body would otherwise do its work before Starlette's counting limit could object)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _declared_length(scope) > MAX_REQUEST_BYTES:
            response = error_response(413, "too_large", TOO_LARGE, "body")
            # The client may still be sending; closing after the reply spares reading it.
            response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        await self._app(scope, receive, send)


def _declared_length(scope: Scope) -> int:
    value = Headers(scope=scope).get("content-length", "")
    return int(value) if value.isdigit() else 0
