"""`/api/users`: the users list (SPEC section 3) as JSON, with search and paging, and as CSV for
import and export. Validation lives in `doormail.users.model`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from doormail.users.csv import CsvError
from doormail.users.model import DuplicateUser, User, UserError, parse_user
from doormail.users.store import UserStore
from doormail.web.errors import ApiError
from doormail.web.state import service_of

router = APIRouter(prefix="/api/users", tags=["users"])

_CSV = "text/csv; charset=utf-8"


def _users(request: Request) -> UserStore:
    return service_of(request).users


def _public(user: User) -> dict[str, Any]:
    return user.model_dump(mode="json")


async def _json_body(request: Request) -> object:
    try:
        return await request.json()
    except ValueError:
        raise ApiError(400, "bad_request", "the request body is not valid JSON", "body") from None


def _user_from(data: object) -> User:
    try:
        return parse_user(data)
    except UserError as error:
        raise ApiError(422, "validation", error.message, error.field) from None


@router.get("")
def list_users(
    request: Request,
    q: Annotated[str, Query(max_length=256)] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=128)] = None,
) -> dict[str, Any]:
    page = _users(request).page(q, limit, cursor)
    return {"items": [_public(u) for u in page.users], "next": page.next, "total": page.total}


@router.post("", status_code=201)
async def create_user(request: Request) -> dict[str, Any]:
    user = _user_from(await _json_body(request))
    try:
        await run_in_threadpool(_users(request).create, user)
    except DuplicateUser as error:
        raise ApiError(409, "conflict", error.message, error.field) from None
    return _public(user)


@router.get("/export")
def export_users(request: Request) -> Response:
    return Response(
        _users(request).export_csv(),
        media_type=_CSV,
        headers={"Content-Disposition": 'attachment; filename="users.csv"'},
    )


@router.post("/import")
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
    body = {
        "error": {
            "code": "validation",
            "field": f"line {first.line}: {first.column}",
            "message": f"{len(error.problems)} bad line(s), nothing was imported: {error}",
            "errors": [
                {"line": p.line, "column": p.column, "message": p.message} for p in error.problems
            ],
        }
    }
    return JSONResponse(body, status_code=422)


@router.get("/{user_id}")
def get_user(request: Request, user_id: str) -> dict[str, Any]:
    user = _users(request).by_id(user_id)
    if user is None:
        raise ApiError(404, "not_found", f"no user with id {user_id!r}", "id")
    return _public(user)


@router.put("/{user_id}")
async def put_user(request: Request, user_id: str) -> dict[str, Any]:
    data = await _json_body(request)
    if isinstance(data, dict) and data.setdefault("id", user_id) != user_id:
        raise ApiError(422, "validation", "must match the id in the path", "id")
    user = _user_from(data)
    if not await run_in_threadpool(_users(request).replace, user):
        raise ApiError(404, "not_found", f"no user with id {user_id!r}", "id")
    return _public(user)


@router.delete("/{user_id}", status_code=204)
def delete_user(request: Request, user_id: str) -> Response:
    if not _users(request).delete(user_id):
        raise ApiError(404, "not_found", f"no user with id {user_id!r}", "id")
    return Response(status_code=204)
