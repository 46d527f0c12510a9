"""`doormail users import|export` and `doormail event TYPE --field value` (the latter against a
real `doormail serve`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from doormail.app import Paths, build_service
from doormail.cli import cli
from doormail.sources.command_line import event_fields
from tests.conftest import RunningService

runner = CliRunner()


def installed(tmp_path: Path) -> str:
    """A data folder that holds a doormail installation (the commands need one)."""
    data = str(tmp_path / "data")
    build_service(Paths.resolve(data))
    return data


HEADER = "id,name,email,numbers,cards,bluetooth,fingerprints\n"


def test_users_import_then_export(tmp_path: Path) -> None:
    data = installed(tmp_path)
    file = tmp_path / "users.csv"
    file.write_text(HEADER + "u-1,Alice,alice@example.com,101;102,0012ab34cd,,\n")
    result = runner.invoke(cli, ["users", "import", str(file), "--data", data])
    assert result.exit_code == 0, result.output
    exported = runner.invoke(cli, ["users", "export", "--data", data])
    assert exported.stdout.splitlines() == [
        HEADER.strip(),
        '"u-1","Alice","alice@example.com","101;102","0012AB34CD","",""',
    ]


def test_users_import_reports_every_bad_line_and_imports_nothing(tmp_path: Path) -> None:
    data = installed(tmp_path)
    file = tmp_path / "users.csv"
    file.write_text(HEADER + "u-1,Alice,bad,,,,\nu-2,Bob,,,,,\nu-3,Carol,,,,\n")
    result = runner.invoke(cli, ["users", "import", str(file), "--data", data])
    assert result.exit_code == 1
    assert f"{file}:2: email:" in result.stderr
    assert f"{file}:4: line:" in result.stderr
    assert "nothing was imported" in result.stderr
    assert build_service(Paths.resolve(data)).users.count() == 0


@pytest.mark.parametrize(
    ("args", "fields"),
    [
        (["--called", "101", "--answered", "false"], {"called": "101", "answered": False}),
        (["--called", "101", "--called", "102"], {"called": ["101", "102"]}),
        (["--call-id=7", "--valid", "TRUE"], {"call_id": "7", "valid": True}),
        (["--auth-id", "0012AB34CD"], {"auth_id": "0012AB34CD"}),
    ],
)
def test_event_fields_from_the_command_line(args: list[str], fields: dict[str, object]) -> None:
    assert event_fields(args) == fields


@pytest.mark.parametrize("args", [["101"], ["--called"], ["--", "x"]])
def test_event_fields_need_a_name_and_a_value(args: list[str]) -> None:
    with pytest.raises(ValueError):
        event_fields(args)


def doormail(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "DOORMAIL_TOKEN"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "doormail", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
    )


def test_event_posts_to_the_running_service(running: RunningService) -> None:
    done = doormail(
        "event",
        "call.ended",
        "--called",
        "101",
        "--called",
        "102",
        "--answered",
        "false",
        "--id",
        "cli-1",
        "--url",
        running.url,
        "--data",
        str(running.data_dir),
    )
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply == {"event_id": "cli-1", "emails": [], "reason": "smtp.enabled is false"}


def test_event_uses_a_token_that_can_only_post_events(running: RunningService) -> None:
    done = doormail(
        "event", "device.rebooted", "--url", running.url, "--data", str(running.data_dir)
    )
    assert done.returncode == 0, done.stderr
    [token] = [t for t in build_service(Paths.resolve(str(running.data_dir))).accounts.tokens()]
    assert (token.name, token.scope) == ("cli", "events")


def test_event_with_a_bad_field_names_it(running: RunningService) -> None:
    token = build_service(Paths.resolve(str(running.data_dir))).accounts.create_token("test")
    done = doormail(
        "event",
        "call.ended",
        "--called",
        "101",
        "--answered",
        "maybe",
        "--url",
        running.url,
        env={"DOORMAIL_TOKEN": token},
    )
    assert done.returncode == 1
    assert "answered: must be true or false" in done.stderr


def test_event_without_a_running_service_says_so(tmp_path: Path) -> None:
    done = doormail(
        "event", "device.rebooted", "--url", "http://127.0.0.1:9", "--data", installed(tmp_path)
    )
    assert done.returncode == 1
    assert "cannot reach doormail" in done.stderr
