"""The users list in the database: look-ups by number and identifier (the Wiegand rule through
an index), several addresses, a taken id, replacing and deleting a user with its identifiers;
and the in-memory look-up the rules are tested with, which must answer as the store does."""

from __future__ import annotations

import pytest

from doormail.users.model import DuplicateUser, User
from doormail.users.store import UserStore
from tests.users.memory import UsersInMemory
from tests.users.test_model import WIEGAND


def alice() -> User:
    return User(
        id="u-alice",
        name="Alice Novak",
        email="alice@example.com, alice@work.example",
        numbers=("101", "+420601000101"),
        cards=("0012ab34cd",),
        bluetooth=("bt-alice",),
        fingerprints=("fp-7",),
    )


@pytest.mark.parametrize(("stored", "presented", "match"), WIEGAND)
def test_a_card_is_found_by_a_common_tail_of_at_least_6(
    users: UserStore, stored: str, presented: str, match: bool
) -> None:
    users.create(User(id="u-card", name="Card holder", cards=(stored,)))
    found = users.by_card(presented)
    assert (found is not None and found.id == "u-card") is match


def test_an_exact_card_wins_over_a_wiegand_tail(users: UserStore) -> None:
    users.create(User(id="a-long", cards=("FF0012AB34CD",)))
    users.create(User(id="b-exact", cards=("12AB34CD",)))
    found = users.by_card("12ab34cd")
    assert found is not None and found.id == "b-exact"


def test_look_ups_by_number_bluetooth_fingerprint_and_id(users: UserStore) -> None:
    users.create(alice())
    users.create(User(id="u-bob", name="Bob", numbers=("102",)))
    for found in (
        users.by_id("u-alice"),
        users.by_number("+420601000101"),
        users.by_bluetooth("bt-alice"),
        users.by_fingerprint("fp-7"),
        users.by_card("0012AB34CD"),
    ):
        assert found == alice().model_copy(update={"cards": ("0012AB34CD",)})
    assert users.by_number("103") is None
    assert users.by_bluetooth("fp-7") is None  # each kind of identifier has its own list
    assert users.by_id("nobody") is None


def test_a_user_may_have_several_addresses(users: UserStore) -> None:
    users.create(alice())
    user = users.by_number("101")
    assert user is not None
    assert user.addresses == ["alice@example.com", "alice@work.example"]


def test_a_taken_id_is_refused(users: UserStore) -> None:
    users.create(alice())
    with pytest.raises(DuplicateUser):
        users.create(User(id="u-alice", name="Someone else"))
    assert users.by_id("u-alice") == users.by_number("101")


def test_replacing_a_user_replaces_its_identifiers(users: UserStore) -> None:
    users.create(alice())
    assert users.replace(User(id="u-alice", name="Alice", numbers=("111",)))
    assert users.by_number("101") is None
    found = users.by_number("111")
    assert found is not None and found.name == "Alice"
    assert not users.replace(User(id="u-nobody"))


def test_deleting_a_user_deletes_its_identifiers(users: UserStore) -> None:
    users.create(alice())
    assert users.delete("u-alice")
    assert users.by_card("0012AB34CD") is None
    assert not users.delete("u-alice")


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("id", "u-alice"),
        ("id", "nobody"),
        ("number", "+420601000101"),
        ("number", " 102 "),
        ("number", "999"),
        ("card", "12ab34cd"),
        ("card", "FF0012AB34CD"),
        ("card", "B34CD"),
        ("card", "AB12CD34"),
        ("bluetooth", "bt-alice"),
        ("bluetooth", "fp-7"),
        ("fingerprint", "fp-7"),
    ],
)
def test_the_in_memory_look_up_answers_as_the_store_does(
    users: UserStore, kind: str, value: str
) -> None:
    listed = [
        alice(),
        User(id="u-bob", name="Bob", numbers=("102",), cards=("12AB34CD",)),
        User(id="u-ann", name="Ann", numbers=("102",), cards=("FFAB12CD34",)),
    ]
    users.import_users(listed)
    in_memory = UsersInMemory(listed)
    asked = f"by_{kind}"
    assert getattr(in_memory, asked)(value) == getattr(users, asked)(value)
