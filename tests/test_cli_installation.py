"""The commands find their installation (SPEC section 1), run as an installer runs them: from
another working directory. Every command but `serve` names the data folder it uses and stops with
a clear message where there is none, creating nothing; `serve` prints the absolute data folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine

from doormail.app import Paths, build_service
from tests.conftest import free_port, start_serve

HEADER = "id,name,email,numbers,cards,bluetooth,fingerprints\n"


def doormail(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`doormail ARGS` run in `cwd`, without the environment's DOORMAIL_* settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DOORMAIL_")}
    return subprocess.run(
        [sys.executable, "-m", "doormail", *args],
        cwd=cwd,
        env=clean | (env or {}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


@pytest.fixture
def installation(tmp_path: Path) -> Path:
    data = tmp_path / "installation"
    build_service(Paths.resolve(str(data)))
    return data


def said(done: subprocess.CompletedProcess[str]) -> str:
    return " ".join(done.stderr.split())


@pytest.mark.parametrize(
    "command",
    [
        ["users", "import", "users.csv"],
        ["users", "export"],
        ["outbox"],
        ["config", "export"],
        ["token", "list"],
        ["test-email", "--to", "me@example.com"],
        ["worker"],
        ["admin", "password", "--generate"],
        ["event", "device.rebooted"],
    ],
)
def test_a_command_run_where_there_is_no_installation_stops_and_creates_nothing(
    elsewhere: Path, command: list[str]
) -> None:
    (elsewhere / "users.csv").write_text(HEADER + "u-1,Alice,alice@example.com,101,,,\n")
    done = doormail(*command, cwd=elsewhere)
    assert done.returncode == 1
    message = said(done)
    assert f"no doormail data in {elsewhere / 'doormail-data'}" in message
    assert "--data" in message and "$DOORMAIL_DATA" in message
    assert "imported" not in done.stdout
    assert sorted(path.name for path in elsewhere.iterdir()) == ["users.csv"]


def test_an_empty_folder_given_with_data_is_not_taken_for_an_installation(
    elsewhere: Path,
) -> None:
    (elsewhere / "empty").mkdir()
    done = doormail("outbox", "--data", "empty", cwd=elsewhere)
    assert done.returncode == 1
    assert f"no doormail data in {elsewhere / 'empty'}" in said(done)
    assert list((elsewhere / "empty").iterdir()) == []


def test_users_import_from_another_folder_names_the_installation_it_fills(
    elsewhere: Path, installation: Path
) -> None:
    (elsewhere / "users.csv").write_text(HEADER + "u-1,Alice,alice@example.com,101,,,\n")
    done = doormail(
        "users", "import", "users.csv", cwd=elsewhere, env={"DOORMAIL_DATA": str(installation)}
    )
    assert done.returncode == 0, done.stderr
    assert f"data folder {installation}" in said(done)
    assert "1 user(s) imported" in done.stdout
    assert build_service(Paths.resolve(str(installation))).users.count() == 1
    assert not (elsewhere / "doormail-data").exists()


def test_users_export_keeps_stdout_for_the_csv(elsewhere: Path, installation: Path) -> None:
    done = doormail("users", "export", "--data", str(installation), cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert done.stdout == HEADER
    assert f"data folder {installation}" in said(done)


def test_serve_prints_the_absolute_data_folder(elsewhere: Path) -> None:
    output = elsewhere.parent / "serve.log"
    start_serve(Path("relative"), output=output, cwd=elsewhere).stop()
    assert f"data folder {elsewhere / 'relative'}" in " ".join(output.read_text().split())


def test_a_database_that_cannot_be_reached_is_named_without_its_password(elsewhere: Path) -> None:
    url = f"postgresql+psycopg://door:s3cret@127.0.0.1:{free_port()}/doormail"
    done = doormail("outbox", "--database", url, cwd=elsewhere)
    assert done.returncode == 1
    message = said(done)
    assert "cannot open the database" in message
    assert "door:***@127.0.0.1" in message and "s3cret" not in message
    assert list(elsewhere.iterdir()) == []


def test_a_command_on_postgresql_names_the_database_it_uses(
    elsewhere: Path, postgres_engine: Engine
) -> None:
    url = postgres_engine.url.render_as_string(hide_password=False)
    done = doormail("outbox", "--database", url, cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    shown = postgres_engine.url.render_as_string(hide_password=True)
    assert f"database {shown}" in said(done)
