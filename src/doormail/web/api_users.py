"""`/api/users`: the users list (SPEC section 3) as JSON, with search and paging, and as CSV for
import and export. Validation lives in `doormail.users.model`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from doormail.users.csv import CsvError, CsvProblem
from doormail.users.model import DuplicateUser, User, UserError, parse_user
from doormail.users.store import UserStore
from doormail.web.bodies import json_body
from doormail.web.errors import ApiError, error_response
from doormail.web.schemas import body_of, json_reply, refusal, text_reply
from doormail.web.state import service_of

router = APIRouter(prefix="/api/users", tags=["users"])

_CSV = "text/csv; charset=utf-8"


def _users(request: Request) -> UserStore:
    return service_of(request).users


def _public(user: User) -> dict[str, Any]:
    return user.model_dump(mode="json")


def _user_from(data: object) -> User:
    try:
        return parse_user(data)
    except UserError as error:
        raise ApiError(422, "validation", error.message, error.field) from None


_USER = json_reply("User", "the user")
_NO_USER = refusal("no user has this id")
_BAD_USER = refusal("a bad value, naming the field and the value")
_CSV_MEDIA = {"text/csv": {"schema": {"type": "string"}}}


@router.get(
    "", response_model=None, responses={200: json_reply("UsersPage", "a page of the list")}
)
def list_users(
    request: Request,
    q: Annotated[str, Query(max_length=256)] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=128)] = None,
) -> dict[str, Any]:
    page = _users(request).page(q, limit, cursor)
    return {"items": [_public(u) for u in page.users], "next": page.next, "total": page.total}


@router.post(
    "",
    status_code=201,
    response_model=None,
    openapi_extra=body_of("UserIn"),
    responses={201: _USER, 409: refusal("a user with this id exists"), 422: _BAD_USER},
)
async def create_user(request: Request) -> dict[str, Any]:
    user = _user_from(await json_body(request))
    try:
        await run_in_threadpool(_users(request).create, user)
    except DuplicateUser as error:
        raise ApiError(409, "conflict", error.message, error.field) from None
    return _public(user)


@router.get(
    "/export",
    response_class=Response,
    responses={200: text_reply("text/csv", "id,name,email,numbers,cards,bluetooth,fingerprints")},
)
def export_users(request: Request) -> Response:
    return Response(
        _users(request).export_csv(),
        media_type=_CSV,
        headers={"Content-Disposition": 'attachment; filename="users.csv"'},
    )


@router.post(
    "/import",
    response_model=None,
    openapi_extra=body_of(media=_CSV_MEDIA),
    responses={
        200: json_reply("UsersImported", "how many users were imported"),
        422: refusal("every bad line, by number and column; nothing was imported"),
    },
)
async def import_users(request: Request, replace: Annotated[bool, Query()] = False) -> JSONResponse:
    """CSV in the body; all or nothing. With `replace=true` users not in the file are deleted."""
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "bad_request", "the CSV must be UTF-8 text", "body") from None
    users = _users(request)
    try:
        count = await run_in_threadpool(users.import_csv, text, replace_all=replace)
    except CsvError as error:
        return _csv_error(error)
    return JSONResponse({"imported": count})


def _csv_error(error: CsvError) -> JSONResponse:
    first = error.problems[0]
    every: list[dict[str, Any]] = [
        {"field": _where(p), "line": p.line, "column": p.column, "message": p.message}
        for p in error.problems
    ]
    message = f"{len(every)} bad line(s), nothing was imported; the first: {first}"
    return error_response(422, "validation", message, _where(first), errors=every)


def _where(problem: CsvProblem) -> str:
    return f"line {problem.line}: {problem.column}"


@router.get("/{user_id}", response_model=None, responses={200: _USER, 404: _NO_USER})
def get_user(request: Request, user_id: str) -> dict[str, Any]:
    user = _users(request).by_id(user_id)
    if user is None:
        raise ApiError(404, "not_found", f"no user with id {user_id!r}", "id")
    return _public(user)


@router.put(
    "/{user_id}",
    response_model=None,
    openapi_extra=body_of("UserIn"),
    responses={200: _USER, 404: _NO_USER, 422: _BAD_USER},
)
async def put_user(request: Request, user_id: str) -> dict[str, Any]:
    data = await json_body(request)
    if isinstance(data, dict) and data.setdefault("id", user_id) != user_id:
        raise ApiError(422, "validation", "must match the id in the path", "id")
    user = _user_from(data)
    if not await run_in_threadpool(_users(request).replace, user):
        raise ApiError(404, "not_found", f"no user with id {user_id!r}", "id")
    return _public(user)


@router.delete(
    "/{user_id}",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "deleted"}, 404: _NO_USER},
)
def delete_user(request: Request, user_id: str) -> Response:
    if not _users(request).delete(user_id):
        raise ApiError(404, "not_found", f"no user with id {user_id!r}", "id")
    return Response(status_code=204)
