"""The in-memory users list the pure tests use answers every look-up as the SQL users list does,
so that a rule tested against it holds in the service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from doormail.store import open_engine, upgrade
from doormail.store.engine import sqlite_url
from doormail.users.model import User, UserLookup
from doormail.users.store import UserStore
from tests.users.memory import UsersInMemory

USERS = (
    User(id="u-alice", name="Alice", numbers=("101", "sip:alice@door"), cards=("0012AB34CD",)),
    User(id="u-bob", name="Bob", numbers=("101",), cards=("99AB34CD",), bluetooth=("bt-bob",)),
    User(id="u-carol", name="Carol", cards=("ABC",), fingerprints=("fp-carol",)),
)
QUESTIONS = [
    ("by_id", "u-bob"),
    ("by_id", "u-nobody"),
    ("by_number", "101"),  # a household: the smallest id answers
    ("by_number", " sip:alice@door "),
    ("by_number", "102"),
    ("by_card", "0012ab34cd"),
    ("by_card", "12AB34CD"),  # a Wiegand tail of both: the exact match first, then the smallest id
    ("by_card", "AB34CD"),
    ("by_card", "99AB34CD"),
    ("by_card", "abc"),
    ("by_card", "BC"),
    ("by_card", ""),
    ("by_bluetooth", "bt-bob"),
    ("by_bluetooth", "bt-alice"),
    ("by_fingerprint", "fp-carol"),
]


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UserStore]:
    folder: Path = tmp_path_factory.mktemp("users")
    engine = open_engine(sqlite_url(folder))
    upgrade(engine)
    directory = UserStore(engine)
    directory.import_users(USERS)
    yield directory
    engine.dispose()


@pytest.mark.parametrize(("question", "value"), QUESTIONS)
def test_the_in_memory_users_list_answers_as_the_sql_one(
    directory: UserStore, question: str, value: str
) -> None:
    in_memory: UserLookup = UsersInMemory(USERS)
    expected = getattr(directory, question)(value)
    found = getattr(in_memory, question)(value)
    assert (found.id if found else None) == (expected.id if expected else None)
