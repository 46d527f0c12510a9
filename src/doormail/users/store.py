"""The users list in the `users` and `user_identifiers` tables: create, replace, delete, search
and page through users, import a whole list in one transaction, and the look-ups of an event's
number or identifier (through an index, never a scan), and the list as CSV text (`users.csv`
reads and writes it). It does not decide who gets mail; `rules` does."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    delete,
    func,
    insert,
    or_,
    select,
    true,
)
from sqlalchemy.exc import IntegrityError

from doormail.store import reading, tables
from doormail.store.changes import CHECK_EVERY, counter, mark_changed
from doormail.users.csv import parse_csv, to_csv
from doormail.users.index import UsersIndex
from doormail.users.model import (
    LIST_FIELDS,
    DuplicateUser,
    User,
    UserLookup,
    shared_number_warning,
)

_BATCH = 500
# The change counter of the users list (store/changes.py).
TOPIC = "users"


@dataclass(frozen=True)
class Page:
    users: list[User]
    next: str | None
    total: int


_users = tables.users.c
_ids = tables.user_identifiers.c


class UserStore:
    """The users list in the `users` and `user_identifiers` tables."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        # The whole list in memory, the change counter it was built at, when that counter was
        # last looked at, and whether this process changed the list since.
        self._index: UsersIndex | None = None
        self._built_at = -1
        self._checked_at = -CHECK_EVERY

    @contextmanager
    def reader(self) -> Iterator[UserLookup]:
        """A UserLookup for the look-ups of one event: the list in memory. A change made here
        has built it again before the change returned; one made through another process is
        seen within CHECK_EVERY seconds."""
        yield self._current()

    def _current(self) -> UsersIndex:
        with self._lock:
            index = self._index
            if index is not None and time.monotonic() - self._checked_at < CHECK_EVERY:
                return index
        with reading(self._engine) as connection:
            seen = counter(connection, TOPIC)
        if index is not None and seen == self._built_at:
            with self._lock:
                self._checked_at = time.monotonic()
            return index
        return self._build()

    def _build(self) -> UsersIndex:
        """Read the whole list and keep it in memory, with the change counter it was read at."""
        checked = time.monotonic()
        with reading(self._engine) as connection:
            seen = counter(connection, TOPIC)
            index = UsersIndex(_load_all(connection))
        with self._lock:
            if seen >= self._built_at:
                self._index, self._built_at, self._checked_at = index, seen, checked
            return self._index or index

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
                mark_changed(connection, TOPIC)
        except IntegrityError:
            raise DuplicateUser("id", f"a user with id {user.id!r} exists") from None
        self._build()
        return user

    def replace(self, user: User) -> bool:
        """Replace an existing user; False when there is no user with that id."""
        with self._engine.begin() as connection:
            if not _exists(connection, user.id):
                return False
            _delete(connection, [user.id])
            _insert(connection, [user])
            mark_changed(connection, TOPIC)
        self._build()
        return True

    def delete(self, user_id: str) -> bool:
        with self._engine.begin() as connection:
            deleted = _delete(connection, [user_id]) > 0
            mark_changed(connection, TOPIC)
        self._build()
        return deleted

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
            mark_changed(connection, TOPIC)
        self._build()
        return len(users)

    def import_csv(self, text: str, *, replace_all: bool = False) -> list[User]:
        """Import CSV text: all or nothing; CsvError lists every bad line. Returns the users
        imported."""
        users = parse_csv(text)
        self.import_users(users, replace_all=replace_all)
        return users

    def export_csv(self) -> str:
        return to_csv(self.all())

    def shared_numbers(self, users: Iterable[User]) -> list[str]:
        """A warning for each number of `users` that is on more than one user of the list."""
        numbers = sorted({number for user in users for number in user.numbers})
        holders: dict[str, list[tuple[str, str]]] = {}
        with reading(self._engine) as connection:
            for chunk in _chunks(numbers):
                rows = connection.execute(
                    select(_ids.value, _users.id, _users.name)
                    .join(tables.users, _users.id == _ids.user_id)
                    .where(_ids.kind == "number", _ids.value.in_(chunk))
                    .distinct()
                    .order_by(_ids.value, _users.id)
                )
                for row in rows:
                    holders.setdefault(row.value, []).append((row.id, row.name))
        return [
            shared_number_warning(number, found)
            for number, found in holders.items()
            if len(found) > 1
        ]


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
            "position": position,
        }
        for user in users
        for kind, position, value in user.identifiers()
    ]
    if rows:
        connection.execute(insert(tables.user_identifiers), rows)


def _load_all(connection: Connection) -> list[User]:
    """Every user, in two statements whatever the list's length."""
    users = tables.users.c
    ids = tables.user_identifiers.c
    found: dict[str, dict[str, Any]] = {
        row.id: {"id": row.id, "name": row.name, "email": row.email}
        for row in connection.execute(select(users.id, users.name, users.email))
    }
    identifiers = connection.execute(
        select(ids.user_id, ids.kind, ids.value).order_by(ids.user_id, ids.kind, ids.position)
    )
    for row in identifiers:
        field = LIST_FIELDS[row.kind]
        held = found[row.user_id]
        held[field] = (*held.get(field, ()), row.value)
    # Stored users were validated on the way in.
    return [User.model_construct(**user) for user in found.values()]


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
