"""The tables `doormail outbox`, `doormail events` and `doormail users list` print fit an
80-column terminal, each row on one line with long cells cut short by …; `--wide` shows every
cell whole, `--json` gives scripts the same rows as the API does."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from doormail.app import Paths, Service, build_service
from doormail.cli import cli
from doormail.events import parse_events
from doormail.settings import apply_patch
from doormail.users.model import User
from tests.conftest import EVENTS_CONFIG

runner = CliRunner(env={"COLUMNS": "80"})
LONG_NAME = "Alexandra Konstantinopolská-Wittgenstein von Hohenzollern-Sigmaringen"
LONG_MAIL = "alexandra.konstantinopolska-wittgenstein@residents.very-long-domain.example"


@pytest.fixture
def data(tmp_path: Path) -> str:
    """A data folder with a resident of a long name and address, two events (one mailed her,
    one did not) and so two mails in the outbox."""
    folder = str(tmp_path / "data")
    service: Service = build_service(Paths.resolve(folder))
    service.settings.save(apply_patch(service.settings.load(), EVENTS_CONFIG))
    user = User(id="u-alexandra", name=LONG_NAME, email=LONG_MAIL, numbers=("101",))
    service.users.create(user)
    events, _ = parse_events(
        [
            {"type": "call.ended", "called": "101", "answered": False, "id": "missed-1"},
            {"type": "call.ended", "called": "101", "answered": True, "id": "answered-1"},
        ]
    )

    async def post_all() -> None:
        for event in events:
            await service.intake.submit(event)

    asyncio.run(post_all())
    return folder


COMMANDS = [["outbox"], ["events"], ["users", "list"]]


@pytest.mark.parametrize("command", COMMANDS)
def test_each_table_fits_80_columns_cutting_long_cells_short(data: str, command: list[str]) -> None:
    result = runner.invoke(cli, [*command, "--data", data])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines and max(len(line) for line in lines) <= 80, result.stdout
    assert "…" in result.stdout
    assert LONG_MAIL not in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_wide_shows_every_cell_whole(data: str, command: list[str]) -> None:
    result = runner.invoke(cli, [*command, "--wide", "--data", data])
    assert result.exit_code == 0, result.output
    assert LONG_MAIL in result.stdout and "…" not in result.stdout


def test_events_table_says_what_came_of_each_event(data: str) -> None:
    result = runner.invoke(cli, ["events", "--wide", "--data", data])
    assert f"queued {LONG_MAIL}" in result.stdout
    assert "no mail: email_on_call.send is missed and the call was answered" in result.stdout


def test_events_of_an_address_say_which_did_not_mail_it_and_why(data: str) -> None:
    result = runner.invoke(cli, ["events", "--address", LONG_MAIL, "--json", "--data", data])
    assert result.exit_code == 0, result.output
    found = {e["event_id"]: e["for_address"] for e in json.loads(result.stdout)}
    assert found["missed-1"]["mailed"] is True
    assert found["answered-1"] == {
        "address": LONG_MAIL,
        "mailed": False,
        "why": "email_on_call.send is missed and the call was answered",
    }


def test_json_gives_the_rows_as_the_api_does(data: str) -> None:
    outbox = json.loads(runner.invoke(cli, ["outbox", "--json", "--data", data]).stdout)
    assert [(item["to"], item["status"]) for item in outbox] == [(LONG_MAIL, "queued")]
    users = json.loads(runner.invoke(cli, ["users", "list", "--json", "--data", data]).stdout)
    assert [(user["id"], user["name"]) for user in users] == [("u-alexandra", LONG_NAME)]
    events = json.loads(runner.invoke(cli, ["events", "--json", "--data", data]).stdout)
    assert [event["event_id"] for event in events] == ["answered-1", "missed-1"]


def test_events_names_a_bad_option(data: str) -> None:
    result = runner.invoke(cli, ["events", "--type", "call", "--data", data])
    assert result.exit_code == 1 and "--type" in result.output


def test_events_since_a_moment(data: str) -> None:
    later = runner.invoke(
        cli, ["events", "--since", "2999-01-01T00:00:00+00:00", "--json", "--data", data]
    )
    assert later.exit_code == 0, later.output
    assert json.loads(later.stdout) == []
    earlier = runner.invoke(
        cli, ["events", "--since", "2000-01-01T00:00:00Z", "--json", "--data", data]
    )
    assert len(json.loads(earlier.stdout)) == 2
    naive = runner.invoke(cli, ["events", "--since", "2000-01-01T00:00:00", "--data", data])
    assert naive.exit_code == 1 and "--since" in naive.output
