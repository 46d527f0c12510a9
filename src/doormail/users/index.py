"""A users list held in memory for the look-ups of events: who holds a number, a card (also as a
Wiegand reader shortens it), a Bluetooth or fingerprint id. Built from the whole list at once
(`users.store` builds it again when the list changed); it neither reads nor writes storage."""

from __future__ import annotations

from collections.abc import Iterable

from doormail.users.model import WIEGAND_MIN, User, card_suffix, cards_match

# The fields looked up by their exact value (cards are looked up by `by_card`).
_EXACT = ("numbers", "bluetooth", "fingerprints")


class UsersIndex:
    """A `UserLookup` over `users`: values compared as stored (cards without case), the lowest
    id first when several users hold one, and an exact card before a card that matches only by
    its Wiegand tail."""

    def __init__(self, users: Iterable[User]) -> None:
        ordered = sorted(users, key=lambda user: user.id)
        self._by_id = {user.id: user for user in ordered}
        self._values: dict[tuple[str, str], User] = {}
        self._tails: dict[str, list[tuple[str, User]]] = {}
        for user in ordered:
            for field in _EXACT:
                for value in getattr(user, field):
                    self._values.setdefault((field, value), user)
            for card in (card.upper() for card in user.cards):
                self._values.setdefault(("cards", card), user)
                if len(card) >= WIEGAND_MIN:
                    self._tails.setdefault(card_suffix(card), []).append((card, user))

    def __len__(self) -> int:
        return len(self._by_id)

    def by_id(self, user_id: str) -> User | None:
        return self._by_id.get(user_id)

    def by_number(self, number: str) -> User | None:
        return self._values.get(("numbers", number.strip()))

    def by_bluetooth(self, bluetooth_id: str) -> User | None:
        return self._values.get(("bluetooth", bluetooth_id.strip()))

    def by_fingerprint(self, fingerprint_id: str) -> User | None:
        return self._values.get(("fingerprints", fingerprint_id.strip()))

    def by_card(self, card_id: str) -> User | None:
        card = card_id.strip().upper()
        if not card:
            return None
        exact = self._values.get(("cards", card))
        if exact is not None or len(card) < WIEGAND_MIN:
            return exact
        sharing_tail = self._tails.get(card_suffix(card), ())
        return next((user for held, user in sharing_tail if cards_match(held, card)), None)
