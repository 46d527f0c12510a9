"""A user of the users list, without a database: each bad field refused by name, and the
Wiegand rule by which a card presented at a reader matches a stored one."""

from __future__ import annotations

import pytest

from doormail.users.model import UserError, cards_match, parse_user

# (stored, presented, whether they match)
WIEGAND = [
    ("0012AB34CD", "0012AB34CD", True),  # equal IDs match
    ("0012AB34CD", "0012ab34cd", True),  # in any case
    ("0012AB34CD", "12AB34CD", True),  # shortened by the reader: common tail of 8
    ("0012AB34CD", "AB34CD", True),  # common tail of exactly 6
    ("0012AB34CD", "B34CD", False),  # a tail of 5 identifies nobody
    ("0012AB34CD", "FF0012AB34CD", True),  # the reader sends more digits
    ("0012AB34CD", "0012AB34CE", False),  # same length, different ID
    ("0012AB34CD", "9912AB34CD", False),  # same length: only equal IDs match
    ("AB34CD", "FFAB34CD", True),
    ("34CD", "34CD", True),  # short IDs match only when equal
    ("34CD", "AB34CD", False),
]


@pytest.mark.parametrize(("stored", "presented", "match"), WIEGAND)
def test_card_ids_of_different_lengths_match_on_a_common_tail_of_at_least_6(
    stored: str, presented: str, match: bool
) -> None:
    assert cards_match(stored, presented) is match


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"email": "alice@example.com, not-an-address"}, "email"),
        ({"email": "Alice <alice@example.com>"}, "email"),
        ({"id": "has space"}, "id"),
        ({"id": "a/b"}, "id"),
        ({"name": "two\nlines"}, "name"),
        ({"numbers": ["101", ""]}, "numbers.1"),
        ({"cards": ["12;34"]}, "cards.0"),
        ({"numbers": "101"}, "numbers"),
        ({"phone": "101"}, "phone"),
    ],
)
def test_a_bad_user_is_refused_naming_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(UserError) as error:
        parse_user(data)
    assert error.value.field == field


@pytest.mark.parametrize(
    ("data", "field", "said"),
    [
        ({"cards": ["ZZZZ"]}, "cards.0", "'ZZZZ' is not a card ID: hexadecimal"),
        ({"cards": ["0012AB34CD", "12 34"]}, "cards.1", "'12 34' is not a card ID"),
        ({"cards": ["0" * 33]}, "cards.0", "(up to 32)"),
        ({"numbers": ["abc def"]}, "numbers.0", "'abc def' is not a number: digits with + * #"),
        ({"numbers": ["+420 601 000 101"]}, "numbers.0", "or a sip: or sips: URI"),
        ({"numbers": ["1" * 33]}, "numbers.0", "(up to 32)"),
        ({"bluetooth": ["bt 1"]}, "bluetooth.0", "'bt 1' must be printable characters without"),
        ({"fingerprints": ["fp\u00a01"]}, "fingerprints.0", "without spaces"),
        ({"id": "has space"}, "id", "'has space' is not a user id"),
    ],
)
def test_a_bad_number_card_or_identifier_is_refused_naming_the_field_and_the_value(
    data: dict[str, object], field: str, said: str
) -> None:
    with pytest.raises(UserError) as error:
        parse_user(data)
    assert error.value.field == field
    assert said in error.value.message


def test_numbers_cards_and_identifiers_in_the_formats_of_the_manual_are_taken() -> None:
    user = parse_user(
        {
            "numbers": ["101", "+420601000101", "*21#", "sip:101@door.example", "SIPS:desk@pbx"],
            "cards": ["0012ab34cd", "F" * 32],
            "bluetooth": ["a1:b2:c3-phone"],
            "fingerprints": ["fp-7/ünï"],
        }
    )
    assert user.cards == ("0012AB34CD", "F" * 32)  # kept upper case
    assert user.numbers[3] == "sip:101@door.example"
