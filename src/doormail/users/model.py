"""A user of the users list (SPEC section 3) and the rules of identifiers, pure: what a valid
user is (each bad field named), how a card presented at a Wiegand reader matches a stored one,
and the `UserLookup` through which the rules ask who an event's number or identifier belongs to.
Where the users are kept is `users.store`'s; the CSV form is `users.csv`'s."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator, Sequence
from typing import Annotated, Literal, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from doormail.settings import AddressList, split_addresses

IdentifierKind = Literal["number", "card", "bluetooth", "fingerprint"]
# The User field holding each kind of identifier, in CSV column order.
LIST_FIELDS: dict[IdentifierKind, str] = {
    "number": "numbers",
    "card": "cards",
    "bluetooth": "bluetooth",
    "fingerprint": "fingerprints",
}
# Wiegand readers send the tail of a card's ID; a tail shorter than this identifies nobody.
WIEGAND_MIN = 6

_ID = re.compile(r"^[A-Za-z0-9._:@+\-]{1,128}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# SPEC section 3's formats: a number is digits with + * # (up to 32) or a sip:/sips: URI; a card
# ID is hexadecimal (up to 32 digits).
_NUMBER = re.compile(r"^[0-9+*#]{1,32}$")
_SIP_URI = re.compile(r"^sips?:\S+$", re.IGNORECASE)
_CARD = re.compile(r"^[0-9A-Fa-f]{1,32}$")
NUMBER_FORMAT = "digits with + * # (up to 32), or a sip: or sips: URI"
CARD_FORMAT = "hexadecimal digits 0-9 A-F (up to 32)"


def new_user_id() -> str:
    return "u-" + secrets.token_hex(6)


def _user_id(value: str) -> str:
    if not _ID.match(value):
        raise ValueError(
            f"{value!r} is not a user id: 1 to 128 letters, digits and . _ : @ + - (no spaces)"
        )
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


def _number(value: str) -> str:
    value = _identifier(value)
    if not (_NUMBER.match(value) or _SIP_URI.match(value)):
        raise ValueError(f"{value!r} is not a number: {NUMBER_FORMAT}")
    return value


def _card(value: str) -> str:
    # Card IDs are hexadecimal as readers print them; one case makes the indexed match exact.
    value = _identifier(value)
    if not _CARD.match(value):
        raise ValueError(f"{value!r} is not a card ID: {CARD_FORMAT}")
    return value.upper()


def _printable(value: str) -> str:
    value = _identifier(value)
    if not value.isprintable() or any(character.isspace() for character in value):
        raise ValueError(f"{value!r} must be printable characters without spaces")
    return value


UserId = Annotated[str, AfterValidator(_user_id)]
Identifier = Annotated[str, AfterValidator(_printable)]
Number = Annotated[str, AfterValidator(_number)]
Card = Annotated[str, AfterValidator(_card)]


class User(BaseModel):
    """One entry of the users list. `email` may hold several addresses separated by commas."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: UserId = Field(default_factory=new_user_id)
    name: Annotated[str, AfterValidator(_name)] = ""
    email: AddressList = ""
    numbers: tuple[Number, ...] = ()
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


def shared_number_warning(number: str, holders: Sequence[tuple[str, str]]) -> str:
    """The warning for a number on several users (a household: allowed, SPEC section 3);
    `holders` are (id, name) ordered by id, and a call to the number goes to the first."""
    named = ", ".join(f"{name} ({id})" if name else id for id, name in holders)
    first = holders[0][1] or holders[0][0]
    return f"number {number} is on {len(holders)} users: {named}; a call to it mails {first}"


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
