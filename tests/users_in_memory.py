"""A users list held in memory, answering the look-ups the rules ask (`UserLookup`) the way the
SQL users list does: so that the pure stages are tested without a database."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from doormail.directory import User, cards_match


class UsersInMemory:
    """The users given, found by id, number, card (Wiegand tails included), Bluetooth or
    fingerprint ID; when several match, the one with the smallest id, as the SQL list does."""

    def __init__(self, users: Iterable[User]) -> None:
        self._users = sorted(users, key=lambda user: user.id)

    def by_id(self, user_id: str) -> User | None:
        return self._first(lambda user: user.id == user_id)

    def by_number(self, number: str) -> User | None:
        return self._first(lambda user: number.strip() in user.numbers)

    def by_card(self, card_id: str) -> User | None:
        card = card_id.strip().upper()
        if not card:
            return None
        exact = self._first(lambda user: card in user.cards)
        return exact or self._first(lambda user: any(cards_match(c, card) for c in user.cards))

    def by_bluetooth(self, bluetooth_id: str) -> User | None:
        return self._first(lambda user: bluetooth_id.strip() in user.bluetooth)

    def by_fingerprint(self, fingerprint_id: str) -> User | None:
        return self._first(lambda user: fingerprint_id.strip() in user.fingerprints)

    def _first(self, matches: Callable[[User], bool]) -> User | None:
        return next((user for user in self._users if matches(user)), None)
