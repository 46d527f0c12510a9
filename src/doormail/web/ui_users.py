"""The Users tab of the web UI: search the users list, add, edit and delete a user, import a CSV
file (all or nothing, every bad line shown by number) and export it. The list and its
validation are `doormail.users`'."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from doormail.users.csv import CsvError
from doormail.users.model import (
    CARD_FORMAT,
    LIST_FIELDS,
    NUMBER_FORMAT,
    DuplicateUser,
    User,
    UserError,
    parse_user,
)
from doormail.web.state import service_of
from doormail.web.ui_common import (
    flash,
    page,
    read_form,
    read_form_with_files,
    require_user,
)

router = APIRouter()

PAGE_SIZE = 50
LISTS = tuple(LIST_FIELDS.values())  # numbers, cards, bluetooth, fingerprints

# The user form's fields: (name, label, help).
USER_FIELDS = (
    ("id", "ID", "Letters, digits and . _ : @ + - ; made up when left empty."),
    ("name", "Name", "The user's name, for $User$."),
    ("email", "E-Mail", "Where this user's mail goes; several addresses separated by commas."),
    (
        "numbers",
        "Numbers",
        f"Phone numbers or extensions that call this user ({NUMBER_FORMAT}), separated by ;",
    ),
    ("cards", "Cards", f"RFID card IDs ({CARD_FORMAT}), separated by ;"),
    ("bluetooth", "Bluetooth IDs", "Bluetooth authentication IDs, separated by ;"),
    ("fingerprints", "Fingerprint IDs", "Fingerprint IDs, separated by ;"),
)


def _user_url(user_id: str) -> str:
    return "/users/" + quote(user_id, safe="")


@router.get("/users")
def users_page(request: Request, q: str = "", after: str | None = None) -> Response:
    require_user(request)
    return _list_page(request, q[:256], after, {})


def _list_page(
    request: Request,
    query: str,
    after: str | None,
    context: dict[str, Any],
    status_code: int = 200,
) -> Response:
    found = service_of(request).users.page(query, PAGE_SIZE, after)
    more = None if found.next is None else "/users?" + urlencode({"q": query, "after": found.next})
    full = {
        "title": "Users",
        "query": query,
        "users": found.users,
        "total": found.total,
        "more": more,
        "user_url": _user_url,
        "import_problems": [],
        "import_error": None,
        "import_csv": "",
        "missing": None,
        **context,
    }
    return page(request, "users.html", full, status_code)


# -- one user ------------------------------------------------------------------------------------


def _form_values(user: User | None) -> dict[str, str]:
    if user is None:
        return {name: "" for name, _label, _help in USER_FIELDS}
    values = {"id": user.id, "name": user.name, "email": user.email}
    for name in LISTS:
        values[name] = "; ".join(getattr(user, name))
    return values


def _user_page(
    request: Request,
    values: dict[str, str],
    existing: str | None,
    errors: dict[str, str],
    status_code: int = 200,
) -> Response:
    context = {
        "title": f"User {existing}" if existing else "Add user",
        "fields": USER_FIELDS,
        "values": values,
        "existing": existing,
        "errors": errors,
        "action": _user_url(existing) if existing else "/users/new",
        "delete_action": _user_url(existing) + "/delete" if existing else None,
    }
    return page(request, "user.html", context, status_code)


def _user_from_form(form: dict[str, str], existing: str | None) -> User:
    data: dict[str, Any] = {
        "name": form.get("name", ""),
        "email": form.get("email", ""),
    }
    user_id = existing or form.get("id", "").strip()
    if user_id:
        data["id"] = user_id
    for name in LISTS:
        data[name] = [part.strip() for part in form.get(name, "").split(";") if part.strip()]
    return parse_user(data)


def _error_key(field: str) -> str:
    # "numbers.1" is about the Numbers field.
    key = field.split(".")[0]
    return key if key in {name for name, _label, _help in USER_FIELDS} else "_form"


@router.get("/users/new")
def new_user_page(request: Request) -> Response:
    require_user(request)
    return _user_page(request, _form_values(None), None, {})


@router.post("/users/new")
async def create_user(request: Request) -> Response:
    form = await read_form(request)
    try:
        user = _user_from_form(form, None)
        await run_in_threadpool(service_of(request).users.create, user)
    except (UserError, DuplicateUser) as error:
        return _user_page(request, form, None, {_error_key(error.field): error.message}, 422)
    await _flash_saved(request, user, "added")
    return RedirectResponse("/users", status_code=303)


def _named(user: User) -> str:
    """How a confirmation names a user: by name, with the id beside it."""
    return f"{user.name} ({user.id})" if user.name else user.id


async def _flash_saved(request: Request, user: User, done: str) -> None:
    shared = await run_in_threadpool(service_of(request).users.shared_numbers, [user])
    flash(request, f"User {_named(user)} {done}.", warnings=shared)


@router.post("/users/import")
async def import_users(request: Request) -> Response:
    fields, files = await read_form_with_files(request)
    data = files.get("file") or fields.get("csv", "").encode()
    replace_all = fields.get("replace") == "on"
    users = service_of(request).users
    problem: str | None = None
    problems: list[Any] = []
    imported: list[User] = []
    text = ""
    if not data.strip():
        problem = "choose a CSV file or paste the CSV text"
    else:
        try:
            text = data.decode("utf-8-sig")
            imported = await run_in_threadpool(users.import_csv, text, replace_all=replace_all)
        except UnicodeDecodeError:
            problem = "the CSV must be UTF-8 text"
        except CsvError as error:
            problem = f"{len(error.problems)} bad line(s); nothing was imported."
            problems = error.problems
    if problem is not None:
        # The refused CSV stays in the text box, to be corrected there.
        context = {"import_error": problem, "import_problems": problems, "import_csv": text}
        return _list_page(request, "", None, context, status_code=422)
    shared = await run_in_threadpool(users.shared_numbers, imported)
    flash(request, f"{len(imported)} user(s) imported.", warnings=shared)
    return RedirectResponse("/users", status_code=303)


@router.get("/users/{user_id}")
def edit_user_page(request: Request, user_id: str) -> Response:
    require_user(request)
    user = service_of(request).users.by_id(user_id)
    if user is None:
        return _list_page(request, "", None, {"missing": user_id}, 404)
    return _user_page(request, _form_values(user), user.id, {})


@router.post("/users/{user_id}")
async def save_user(request: Request, user_id: str) -> Response:
    form = await read_form(request)
    try:
        user = _user_from_form(form, user_id)
    except UserError as error:
        values = {**form, "id": user_id}
        return _user_page(request, values, user_id, {_error_key(error.field): error.message}, 422)
    if not await run_in_threadpool(service_of(request).users.replace, user):
        return _list_page(request, "", None, {"missing": user_id}, 404)
    await _flash_saved(request, user, "saved")
    return RedirectResponse("/users", status_code=303)


@router.post("/users/{user_id}/delete")
async def delete_user(request: Request, user_id: str) -> Response:
    await read_form(request)
    users = service_of(request).users
    user = await run_in_threadpool(users.by_id, user_id)
    await run_in_threadpool(users.delete, user_id)
    flash(request, f"User {_named(user) if user else user_id} deleted.")
    return RedirectResponse("/users", status_code=303)
