"""A users list held in memory, for the tests of the stages that only ask who an event's number
or identifier belongs to (the rules, the pipeline): it answers as `users.store` does, which
`tests/users/test_store.py` checks, and needs no database."""

from __future__ import annotations

from collections.abc import Iterable

from doormail.users.model import User, cards_match


class UsersInMemory:
    """A `UserLookup` over `users`. As the store: values compared as stored (cards without
    case), the lowest id first when several users hold one, and an exact card before a card
    that matches only by its Wiegand tail."""

    def __init__(self, users: Iterable[User]) -> None:
        self._users = sorted(users, key=lambda user: user.id)

    def by_id(self, user_id: str) -> User | None:
        return next((user for user in self._users if user.id == user_id), None)

    def by_number(self, number: str) -> User | None:
        return self._holding("numbers", number.strip())

    def by_bluetooth(self, bluetooth_id: str) -> User | None:
        return self._holding("bluetooth", bluetooth_id.strip())

    def by_fingerprint(self, fingerprint_id: str) -> User | None:
        return self._holding("fingerprints", fingerprint_id.strip())

    def by_card(self, card_id: str) -> User | None:
        card = card_id.strip().upper()
        if not card:
            return None
        exact = self._holding("cards", card)
        if exact is not None:
            return exact
        return next(
            (user for user in self._users if any(cards_match(c, card) for c in user.cards)), None
        )

    def _holding(self, field: str, value: str) -> User | None:
        return next((user for user in self._users if value in getattr(user, field)), None)
