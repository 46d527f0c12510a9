"""A way back in (SPEC section 1): the generated admin password on a line of its own,
`doormail admin password` for whoever has the data folder, and a $DOORMAIL_ADMIN_PASSWORD that
no longer counts reported at start."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from doormail.accounts import ADMIN
from doormail.app import Paths, Service, build_service
from doormail.cli import cli
from tests.conftest import ADMIN_PASSWORD, start_serve

runner = CliRunner()


def accounts_of(data: Path) -> Service:
    return build_service(Paths.resolve(str(data)))


def test_admin_password_generated_is_printed_on_a_line_of_its_own_and_works(
    service: Service, installation: list[str]
) -> None:
    epoch = service.accounts.session_epoch(ADMIN)
    result = runner.invoke(cli, ["admin", "password", "--generate", *installation])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    password = lines[lines.index("The admin's new password, shown only this once:") + 1]
    assert len(password) == 16
    accounts = service.accounts
    assert accounts.check_password(ADMIN, password)
    assert not accounts.check_password(ADMIN, ADMIN_PASSWORD)
    assert accounts.session_epoch(ADMIN) != epoch  # every session ended


def test_admin_password_typed_twice_is_set(service: Service, installation: list[str]) -> None:
    typed = "a new long password\na new long password\n"
    result = runner.invoke(cli, ["admin", "password", *installation], input=typed)
    assert result.exit_code == 0, result.output
    assert "The admin password was changed." in result.stdout
    assert "a new long password" not in result.stdout
    assert service.accounts.check_password(ADMIN, "a new long password")


def test_admin_password_typed_empty_generates_one(
    service: Service, installation: list[str]
) -> None:
    result = runner.invoke(cli, ["admin", "password", *installation], input="\n\n")
    assert result.exit_code == 0, result.output
    password = result.stdout.splitlines()[-2]
    assert service.accounts.check_password(ADMIN, password)


def test_admin_password_too_short_is_refused_and_the_old_one_stays(
    service: Service, installation: list[str]
) -> None:
    result = runner.invoke(cli, ["admin", "password", *installation], input="abc\nabc\n")
    assert result.exit_code == 1
    assert "at least 8 characters" in result.stderr
    assert service.accounts.check_password(ADMIN, ADMIN_PASSWORD)


def test_admin_password_without_an_installation_creates_nothing(tmp_path: Path) -> None:
    result = runner.invoke(cli, ["admin", "password", "--generate", "--data", str(tmp_path / "d")])
    assert result.exit_code == 1
    assert "no doormail data" in result.stderr
    assert not (tmp_path / "d").exists()


def test_first_start_prints_the_generated_password_on_a_line_of_its_own(tmp_path: Path) -> None:
    output = tmp_path / "serve.log"
    served = start_serve(tmp_path / "data", env={"DOORMAIL_ADMIN_PASSWORD": ""}, output=output)
    served.stop()
    lines = output.read_text().splitlines()
    password = lines[
        lines.index("Created the admin account 'admin'. Its password, shown only this once:") + 1
    ]
    assert accounts_of(tmp_path / "data").accounts.check_password(ADMIN, password)


def test_a_differing_admin_password_in_the_environment_at_a_later_start_is_reported(
    tmp_path: Path,
) -> None:
    start_serve(tmp_path / "data").stop()
    output = tmp_path / "serve.log"
    served = start_serve(
        tmp_path / "data", env={"DOORMAIL_ADMIN_PASSWORD": "another one"}, output=output
    )
    served.stop()
    log = " ".join(output.read_text().split())
    assert "WARNING" in log
    assert "$DOORMAIL_ADMIN_PASSWORD differs from the admin password stored in" in log
    assert "doormail admin password" in log
    assert "another one" not in log
    assert accounts_of(tmp_path / "data").accounts.check_password(ADMIN, ADMIN_PASSWORD)


def test_the_same_admin_password_in_the_environment_at_a_later_start_is_not_reported(
    tmp_path: Path,
) -> None:
    start_serve(tmp_path / "data").stop()
    output = tmp_path / "serve.log"
    start_serve(tmp_path / "data", output=output).stop()
    assert "DOORMAIL_ADMIN_PASSWORD" not in output.read_text()
