"""The API's OpenAPI 3 document at `/openapi.json` and Swagger UI at `/docs`, both behind the same
authentication as the API. The document is FastAPI's, completed with the named shapes of
`schemas`, the two ways to authenticate, and the refusals every route can answer with (in the
native error shape, not FastAPI's own). Swagger UI's files come from the pinned
`fastapi-swagger` package and are served by doormail itself: the page loads nothing from
elsewhere and runs no inline script."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from starlette.staticfiles import StaticFiles

from doormail import __version__
from doormail.web import schemas
from doormail.web.security import authenticate
from doormail.web.ui_common import csrf_token, templates

SWAGGER_UI = "/static/swagger-ui"
_BODY_METHODS = {"post", "put", "patch"}
_FASTAPI_SHAPES = ("HTTPValidationError", "ValidationError")

# The HTTP server itself answers a request whose head (request line and headers) is larger than
# it reads (h11 buffers 16 KiB of an unfinished head) with a plain-text 400, before doormail
# sees it.
_UNREADABLE = {
    "description": "the request cannot be read: a body that is not JSON, not UTF-8 or nested "
    "too deeply, or a request line and headers too long for the HTTP server (in plain text)",
    "content": {
        **schemas.refusal("")["content"],
        "text/plain": {"schema": {"type": "string"}},
    },
}

router = APIRouter(include_in_schema=False, dependencies=[Depends(authenticate)])


@router.get("/openapi.json")
def openapi_document(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
def docs(request: Request) -> Response:
    context = {"csrf": csrf_token(request), "swagger_ui": SWAGGER_UI}
    response = templates.TemplateResponse(request, "docs.html", context)
    response.headers["Cache-Control"] = "no-store"
    return response


def swagger_ui_files() -> Path:
    """The folder of Swagger UI's script and stylesheet inside the installed package."""
    return Path(str(resources.files("fastapi_swagger").joinpath("resources")))


def install(app: FastAPI) -> None:
    """Serve the document and the docs page on `app` (before the UI's /static is mounted, so
    that Swagger UI's files are found under it)."""
    app.mount(SWAGGER_UI, StaticFiles(directory=swagger_ui_files()), name="swagger-ui")
    app.include_router(router)

    def cached() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_document(app)
        return app.openapi_schema

    app.openapi = cached  # type: ignore[method-assign]


def build_document(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title="doormail",
        version=__version__,
        description=(
            "E-mail notifications for door stations and IP intercoms. Every route needs "
            "HTTP Basic (`admin` and its password) or `Authorization: Bearer TOKEN`; a token of "
            "scope `events` may only post events and send e-mail."
        ),
        routes=app.routes,
    )
    components = document.setdefault("components", {})
    shapes = components.setdefault("schemas", {})
    for name in _FASTAPI_SHAPES:
        shapes.pop(name, None)
    shapes.update(schemas.component_schemas())
    components["securitySchemes"] = {
        "basic": {"type": "http", "scheme": "basic", "description": "admin and its password"},
        "bearer": {"type": "http", "scheme": "bearer", "description": "an API token"},
    }
    document["security"] = [{"basic": []}, {"bearer": []}]
    for path in document.get("paths", {}).values():
        for method, operation in path.items():
            _complete(method, operation)
    return document


def _complete(method: str, operation: dict[str, Any]) -> None:
    """Add the refusals any route may answer with, in the native error shape."""
    answers: dict[str, Any] = operation.setdefault("responses", {})
    if "422" in answers:
        answers["422"] = schemas.refusal("a parameter or the body names a bad value")
    answers.setdefault(
        "401",
        {
            **schemas.refusal("no credentials, or wrong ones"),
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
        },
    )
    answers.setdefault("403", schemas.refusal("a token whose scope does not cover this route"))
    answers.setdefault(
        "429",
        {
            **schemas.refusal("too many wrong passwords or tokens from this address or account"),
            "headers": {"Retry-After": {"schema": {"type": "string"}}},
        },
    )
    answers.setdefault("400", _UNREADABLE)
    if method in _BODY_METHODS:
        answers.setdefault("413", schemas.refusal("the body is larger than the service accepts"))
