"""A number on two users (a household) is allowed and reported as a warning (SPEC section 3)
wherever users are saved: the API, a CSV import (API, command line) and the Users tab."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from doormail.app import Service
from doormail.cli import cli
from doormail.users.model import User
from doormail.web.app import create_app
from tests.conftest import log_in_with_the_form

HEADER = "id,name,email,numbers,cards,bluetooth,fingerprints\n"
SHARED = (
    "number 101 is on 2 users: Alice Novak (u-alice), Bob Novak (u-bob);"
    " a call to it mails Alice Novak"
)


def test_a_second_user_with_the_same_number_is_saved_with_a_warning(
    api: TestClient, service: Service
) -> None:
    first = api.post(
        "/api/users", json={"id": "u-alice", "name": "Alice Novak", "numbers": ["101"]}
    )
    assert first.json()["warnings"] == []
    second = api.post("/api/users", json={"id": "u-bob", "name": "Bob Novak", "numbers": ["101"]})
    assert second.status_code == 201
    assert second.json()["warnings"] == [{"field": "numbers", "message": SHARED}]
    assert service.users.count() == 2
    replaced = api.put("/api/users/u-bob", json={"name": "Bob Novak", "numbers": ["102"]})
    assert replaced.json()["warnings"] == []


def test_a_csv_import_reports_numbers_on_several_users(api: TestClient) -> None:
    text = HEADER + "u-alice,Alice Novak,,101,,,\nu-bob,Bob Novak,,101;102,,,\n"
    reply = api.post("/api/users/import", content=text, headers={"content-type": "text/csv"})
    assert reply.status_code == 200
    assert reply.json() == {"imported": 2, "warnings": [{"field": "numbers", "message": SHARED}]}


def test_users_import_on_the_command_line_warns_of_a_shared_number(
    service: Service, installation: list[str], tmp_path: Path
) -> None:
    service.users.create(User(id="u-alice", name="Alice Novak", numbers=("101",)))
    file = tmp_path / "users.csv"
    file.write_text(HEADER + "u-bob,Bob Novak,,101,,,\n")
    result = CliRunner().invoke(cli, ["users", "import", str(file), *installation])
    assert result.exit_code == 0, result.output
    assert f"warning: {SHARED}" in " ".join(result.stderr.split())


def test_the_users_tab_names_the_user_and_warns_of_a_shared_number(service: Service) -> None:
    service.users.create(User(id="u-alice", name="Alice Novak", numbers=("101",)))
    with TestClient(create_app(service)) as browser:
        log_in_with_the_form(browser)
        token = browser.get("/users/new").text.split('name="csrf_token" value="')[1].split('"')[0]
        form = {"csrf_token": token, "id": "u-bob", "name": "Bob Novak", "numbers": "101"}
        shown = browser.post("/users/new", data=form)
        assert "User Bob Novak (u-bob) added." in shown.text
        assert SHARED in shown.text
        form = {"csrf_token": token}
        deleted = browser.post("/users/u-bob/delete", data=form)
        assert "User Bob Novak (u-bob) deleted." in deleted.text


def test_a_refused_csv_stays_in_the_users_tab_for_correcting(service: Service) -> None:
    with TestClient(create_app(service)) as browser:
        log_in_with_the_form(browser)
        token = browser.get("/users").text.split('name="csrf_token" value="')[1].split('"')[0]
        pasted = HEADER + "u-1,Carol,,abc def,ZZZZ,,\n"
        shown = browser.post("/users/import", data={"csrf_token": token, "csv": pasted})
        assert shown.status_code == 422
        assert "line 2, numbers: &#39;abc def&#39; is not a number" in shown.text
        assert "u-1,Carol,,abc def,ZZZZ,," in shown.text  # in the text box, to be corrected
        assert service.users.count() == 0
