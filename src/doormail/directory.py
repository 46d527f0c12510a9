"""The users list (SPEC section 3): users with their e-mail addresses, numbers, cards, Bluetooth
and fingerprint IDs, how an event's number or identifier finds its user (through an index, never
a scan), and the list as CSV. It does not decide who gets mail; `rules` does."""

from __future__ import annotations

import csv
import io
import re
import secrets
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import ColumnElement, Connection, Engine, delete, func, insert, or_, select, true
from sqlalchemy.exc import IntegrityError

from doormail.settings import AddressList, split_addresses
from doormail.store import reading, tables

IdentifierKind = Literal["number", "card", "bluetooth", "fingerprint"]
# The User field holding each kind of identifier, in CSV column order.
LIST_FIELDS: dict[IdentifierKind, str] = {
    "number": "numbers",
    "card": "cards",
    "bluetooth": "bluetooth",
    "fingerprint": "fingerprints",
}
CSV_COLUMNS = ("id", "name", "email", "numbers", "cards", "bluetooth", "fingerprints")
# Lines of one CSV import: ten times the largest intercom directory; a file beyond it is refused
# before any line is read (200,000 lines took 400 MB and half a minute).
MAX_IMPORT_LINES = 50_000
# Wiegand readers send the tail of a card's ID; a tail shorter than this identifies nobody.
WIEGAND_MIN = 6

# A cell that begins with one of these is run as a formula by a spreadsheet (OWASP, CSV
# injection): the export puts an apostrophe in front, which the import takes away again.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

_ID = re.compile(r"^[A-Za-z0-9._:@+\-]{1,128}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BATCH = 500


def new_user_id() -> str:
    return "u-" + secrets.token_hex(6)


def _user_id(value: str) -> str:
    if not _ID.match(value):
        raise ValueError("must be 1 to 128 characters: letters, digits and . _ : @ + - (no spaces)")
    return value


def _name(value: str) -> str:
    value = value.strip()
    if _CONTROL.search(value):
        raise ValueError("must be a single line without control characters")
    if len(value) > 200:
        raise ValueError("must be at most 200 characters")
    return value


def _identifier(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    if len(value) > 256:
        raise ValueError("must be at most 256 characters")
    if ";" in value or _CONTROL.search(value):
        raise ValueError(f"{value!r} must not contain ';' or control characters")
    return value


def _card(value: str) -> str:
    # Card IDs are hexadecimal as readers print them; one case makes the indexed match exact.
    return _identifier(value).upper()


UserId = Annotated[str, AfterValidator(_user_id)]
Identifier = Annotated[str, AfterValidator(_identifier)]
Card = Annotated[str, AfterValidator(_card)]


class User(BaseModel):
    """One entry of the users list. `email` may hold several addresses separated by commas."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: UserId = Field(default_factory=new_user_id)
    name: Annotated[str, AfterValidator(_name)] = ""
    email: AddressList = ""
    numbers: tuple[Identifier, ...] = ()
    cards: tuple[Card, ...] = ()
    bluetooth: tuple[Identifier, ...] = ()
    fingerprints: tuple[Identifier, ...] = ()

    @property
    def addresses(self) -> list[str]:
        return split_addresses(self.email)

    def identifiers(self) -> Iterator[tuple[IdentifierKind, int, str]]:
        for kind, field in LIST_FIELDS.items():
            values: tuple[str, ...] = getattr(self, field)
            for position, value in enumerate(values):
                yield kind, position, value


class UserLookup(Protocol):
    """How the rules find the user behind an event's number or identifier."""

    def by_id(self, user_id: str) -> User | None: ...
    def by_number(self, number: str) -> User | None: ...
    def by_card(self, card_id: str) -> User | None: ...
    def by_bluetooth(self, bluetooth_id: str) -> User | None: ...
    def by_fingerprint(self, fingerprint_id: str) -> User | None: ...


class UserError(ValueError):
    """A user that cannot be accepted; `field` names the bad value."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class DuplicateUser(UserError):
    """A new user whose id is taken."""


@dataclass(frozen=True)
class CsvProblem:
    line: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, {self.column}: {self.message}"


class CsvError(ValueError):
    """An import refused as a whole; every bad line is listed."""

    def __init__(self, problems: Sequence[CsvProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class Page:
    users: list[User]
    next: str | None
    total: int


def parse_user(data: object) -> User:
    """A User from a JSON object, or UserError naming the first bad field."""
    try:
        return User.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "user"
        return _raise_user_error(field, first["type"], first["msg"])


def _raise_user_error(field: str, kind: str, message: str) -> User:
    if kind == "extra_forbidden":
        message = "is not a known field"
    elif kind == "model_type":
        message = "must be a JSON object"
    raise UserError(field, message.removeprefix("Value error, "))


def card_suffix(card: str) -> str:
    return card.upper()[-WIEGAND_MIN:]


def cards_match(a: str, b: str) -> bool:
    """Equal IDs match; IDs of different lengths match when their last min(len) characters are
    equal and that is at least 6 (Wiegand readers shorten IDs)."""
    a, b = a.upper(), b.upper()
    if a == b:
        return True
    common = min(len(a), len(b))
    return common >= WIEGAND_MIN and a[-common:] == b[-common:]


class _Reader:
    """Look-ups on one open connection, so that one event's questions cost one connection."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def by_id(self, user_id: str) -> User | None:
        users = _load(self._connection, [user_id])
        return users[0] if users else None

    def by_number(self, number: str) -> User | None:
        return self._by_value("number", number.strip())

    def by_bluetooth(self, bluetooth_id: str) -> User | None:
        return self._by_value("bluetooth", bluetooth_id.strip())

    def by_fingerprint(self, fingerprint_id: str) -> User | None:
        return self._by_value("fingerprint", fingerprint_id.strip())

    def by_card(self, card_id: str) -> User | None:
        card = card_id.strip().upper()
        if not card:
            return None
        ids = tables.user_identifiers.c
        column = ids.value if len(card) < WIEGAND_MIN else ids.suffix
        key = card if len(card) < WIEGAND_MIN else card_suffix(card)
        rows = self._connection.execute(
            select(ids.user_id, ids.value)
            .where(ids.kind == "card", column == key)
            .order_by(ids.user_id)
        ).all()
        exact = [row.user_id for row in rows if row.value == card]
        tails = [row.user_id for row in rows if cards_match(row.value, card)]
        found = exact or tails
        return self.by_id(found[0]) if found else None

    def _by_value(self, kind: IdentifierKind, value: str) -> User | None:
        ids = tables.user_identifiers.c
        user_id = self._connection.execute(
            select(ids.user_id)
            .where(ids.kind == kind, ids.value == value)
            .order_by(ids.user_id)
            .limit(1)
        ).scalar()
        return None if user_id is None else self.by_id(user_id)


class Directory:
    """The users list in the `users` and `user_identifiers` tables."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextmanager
    def reader(self) -> Iterator[UserLookup]:
        """A UserLookup on one connection, for the look-ups of one event."""
        with reading(self._engine) as connection:
            yield _Reader(connection)

    @staticmethod
    def on(connection: Connection) -> UserLookup:
        """A UserLookup inside the caller's connection (and transaction)."""
        return _Reader(connection)

    def by_id(self, user_id: str) -> User | None:
        with self.reader() as users:
            return users.by_id(user_id)

    def by_number(self, number: str) -> User | None:
        with self.reader() as users:
            return users.by_number(number)

    def by_card(self, card_id: str) -> User | None:
        with self.reader() as users:
            return users.by_card(card_id)

    def by_bluetooth(self, bluetooth_id: str) -> User | None:
        with self.reader() as users:
            return users.by_bluetooth(bluetooth_id)

    def by_fingerprint(self, fingerprint_id: str) -> User | None:
        with self.reader() as users:
            return users.by_fingerprint(fingerprint_id)

    def create(self, user: User) -> User:
        """Add a new user; DuplicateUser when its id is taken."""
        try:
            with self._engine.begin() as connection:
                if _exists(connection, user.id):
                    raise DuplicateUser("id", f"a user with id {user.id!r} exists")
                _insert(connection, [user])
        except IntegrityError:
            raise DuplicateUser("id", f"a user with id {user.id!r} exists") from None
        return user

    def replace(self, user: User) -> bool:
        """Replace an existing user; False when there is no user with that id."""
        with self._engine.begin() as connection:
            if not _exists(connection, user.id):
                return False
            _delete(connection, [user.id])
            _insert(connection, [user])
        return True

    def delete(self, user_id: str) -> bool:
        with self._engine.begin() as connection:
            return _delete(connection, [user_id]) > 0

    def count(self) -> int:
        with reading(self._engine) as connection:
            return int(
                connection.execute(select(func.count()).select_from(tables.users)).scalar_one()
            )

    def page(self, query: str = "", limit: int = 100, after: str | None = None) -> Page:
        """Users ordered by id, `limit` at a time after the id `after`; `query` matches (case
        insensitively) a part of the id, name, e-mail or any identifier."""
        users = tables.users.c
        condition = _search(query)
        statement = select(users.id).where(condition).order_by(users.id).limit(limit + 1)
        if after:
            statement = statement.where(users.id > after)
        with reading(self._engine) as connection:
            ids = list(connection.execute(statement).scalars())
            total = connection.execute(
                select(func.count()).select_from(tables.users).where(condition)
            ).scalar_one()
            found = _load(connection, ids[:limit])
        return Page(found, ids[limit - 1] if len(ids) > limit else None, int(total))

    def all(self) -> Iterator[User]:
        """Every user, ordered by id, loaded in batches."""
        after: str | None = None
        while True:
            page = self.page(limit=_BATCH, after=after)
            yield from page.users
            if page.next is None:
                return
            after = page.next

    def import_users(self, users: Sequence[User], *, replace_all: bool = False) -> int:
        """Create or replace `users` in one transaction (with `replace_all`, users not among them
        are deleted). Returns how many were written."""
        with self._engine.begin() as connection:
            if replace_all:
                connection.execute(delete(tables.user_identifiers))
                connection.execute(delete(tables.users))
            else:
                _delete(connection, [user.id for user in users])
            _insert(connection, users)
        return len(users)

    def import_csv(self, text: str, *, replace_all: bool = False) -> int:
        """Import CSV text: all or nothing; CsvError lists every bad line."""
        return self.import_users(parse_csv(text), replace_all=replace_all)

    def export_csv(self) -> str:
        return to_csv(self.all())


def _search(query: str) -> ColumnElement[bool]:
    query = query.strip()
    users = tables.users.c
    if not query:
        return true()
    pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    ids = tables.user_identifiers.c
    by_identifier = select(ids.user_id).where(ids.value.ilike(pattern, escape="\\"))
    return or_(
        users.id.ilike(pattern, escape="\\"),
        users.name.ilike(pattern, escape="\\"),
        users.email.ilike(pattern, escape="\\"),
        users.id.in_(by_identifier),
    )


def _exists(connection: Connection, user_id: str) -> bool:
    found = connection.execute(select(tables.users.c.id).where(tables.users.c.id == user_id))
    return found.first() is not None


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _BATCH):
        yield items[start : start + _BATCH]


def _delete(connection: Connection, user_ids: Sequence[str]) -> int:
    deleted = 0
    for chunk in _chunks(user_ids):
        connection.execute(
            delete(tables.user_identifiers).where(tables.user_identifiers.c.user_id.in_(chunk))
        )
        deleted += connection.execute(
            delete(tables.users).where(tables.users.c.id.in_(chunk))
        ).rowcount
    return deleted


def _insert(connection: Connection, users: Sequence[User]) -> None:
    if not users:
        return
    now = time.time()
    connection.execute(
        insert(tables.users),
        [{"id": u.id, "name": u.name, "email": u.email, "created_at": now} for u in users],
    )
    rows = [
        {
            "user_id": user.id,
            "kind": kind,
            "value": value,
            "suffix": card_suffix(value) if kind == "card" else "",
            "position": position,
        }
        for user in users
        for kind, position, value in user.identifiers()
    ]
    if rows:
        connection.execute(insert(tables.user_identifiers), rows)


def _load(connection: Connection, user_ids: Sequence[str]) -> list[User]:
    if not user_ids:
        return []
    users = tables.users.c
    ids = tables.user_identifiers.c
    rows = connection.execute(
        select(users.id, users.name, users.email).where(users.id.in_(user_ids))
    )
    found: dict[str, dict[str, Any]] = {
        row.id: {"id": row.id, "name": row.name, "email": row.email} for row in rows
    }
    identifiers = connection.execute(
        select(ids.user_id, ids.kind, ids.value)
        .where(ids.user_id.in_(list(found)))
        .order_by(ids.user_id, ids.kind, ids.position)
    )
    for row in identifiers:
        field = LIST_FIELDS[row.kind]
        found[row.user_id][field] = (*found[row.user_id].get(field, ()), row.value)
    # Stored users were validated on the way in.
    return [User.model_construct(**found[uid]) for uid in user_ids if uid in found]


def parse_csv(text: str) -> list[User]:
    """Users from CSV text with a header line; CsvError lists every bad line and column. A cell
    that begins with an apostrophe before what starts a formula (`'+420…`) loses that
    apostrophe, which the export put there to keep spreadsheets from running the cell."""
    lines = text.count("\n") + (not text.endswith("\n"))
    if lines > MAX_IMPORT_LINES:
        too_many = f"the file has {lines} lines; one import takes at most {MAX_IMPORT_LINES}"
        raise CsvError([CsvProblem(MAX_IMPORT_LINES + 1, "file", too_many + " (split it)")])
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise CsvError([CsvProblem(1, "header", _header_hint())]) from None
    except csv.Error as error:
        raise CsvError([CsvProblem(1, "header", str(error))]) from None
    columns = [name.strip().lower() for name in header]
    problems = _check_header(columns)
    if problems:
        raise CsvError(problems)
    users, problems = _parse_rows(reader, columns)
    if problems:
        raise CsvError(problems)
    return users


def _header_hint() -> str:
    return "the first line must be the header " + ",".join(CSV_COLUMNS)


def _check_header(columns: list[str]) -> list[CsvProblem]:
    unknown = [name for name in columns if name not in CSV_COLUMNS]
    if unknown:
        return [CsvProblem(1, "header", f"unknown column {unknown[0]!r}; {_header_hint()}")]
    repeated = [name for name in columns if columns.count(name) > 1]
    if repeated:
        return [CsvProblem(1, "header", f"column {repeated[0]!r} appears twice")]
    return []


def _parse_rows(
    reader: Iterable[list[str]], columns: list[str]
) -> tuple[list[User], list[CsvProblem]]:
    users: list[User] = []
    problems: list[CsvProblem] = []
    seen: dict[str, int] = {}
    line = 1
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as error:
            problems.append(CsvProblem(line + 1, "line", str(error)))
            break
        start, line = line + 1, getattr(reader, "line_num", line + 1)
        if not any(cell.strip() for cell in row):
            continue
        user, problem = _parse_row(start, row, columns)
        if problem:
            problems.extend(problem)
        elif user is not None:
            if user.id in seen:
                problems.append(
                    CsvProblem(start, "id", f"{user.id!r} is already on line {seen[user.id]}")
                )
            seen.setdefault(user.id, start)
            users.append(user)
    return users, problems


def _parse_row(
    line: int, row: list[str], columns: list[str]
) -> tuple[User | None, list[CsvProblem]]:
    if len(row) != len(columns):
        return None, [
            CsvProblem(line, "line", f"has {len(row)} fields, the header has {len(columns)}")
        ]
    data: dict[str, object] = {}
    for name, raw in zip(columns, row, strict=True):
        cell = _restored(raw.strip())
        if name in LIST_FIELDS.values():
            data[name] = [part for part in cell.split(";") if part.strip()]
        elif name != "id" or cell.strip():
            data[name] = cell.strip()
    try:
        return User.model_validate(data), []
    except ValidationError as error:
        return None, [
            CsvProblem(line, str(e["loc"][0]), str(e["msg"]).removeprefix("Value error, "))
            for e in error.errors()
        ]


def to_csv(users: Iterable[User]) -> str:
    """The users as CSV with a header line, lists joined with `;`. Every cell is quoted (a
    spreadsheet that splits at `;`, as in many locales, still sees one cell) and one that a
    spreadsheet would run as a formula gets an apostrophe in front (see `parse_csv`)."""
    out = io.StringIO(newline="")
    out.write(",".join(CSV_COLUMNS) + "\r\n")
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    for user in users:
        cells = [user.id, user.name, user.email]
        cells += [";".join(getattr(user, field)) for field in LIST_FIELDS.values()]
        writer.writerow([_neutralised(cell) for cell in cells])
    return out.getvalue()


def _neutralised(cell: str) -> str:
    """`cell` with an apostrophe in front when it begins, after any apostrophes, with what
    starts a formula; so `_restored` can tell an added apostrophe from one that was there."""
    return "'" + cell if cell.lstrip("'").startswith(_FORMULA_START) else cell


def _restored(cell: str) -> str:
    """A cell as `_neutralised` had it."""
    if cell.startswith("'") and cell.lstrip("'").startswith(_FORMULA_START):
        return cell[1:]
    return cell
