"""The `doormail` command's configuration and token subcommands, and what `serve` and `worker` do
before they run."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from typer.testing import CliRunner

import doormail.cli
from doormail.accounts import Caller
from doormail.app import Paths, build_service
from doormail.cli import cli, parse_listen
from doormail.settings import apply_patch

runner = CliRunner()


def installed(tmp_path: Path) -> str:
    """A data folder that holds a doormail installation (the commands need one)."""
    data = str(tmp_path / "data")
    build_service(Paths.resolve(data))
    return data


def test_config_export_leaves_secrets_out(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    service = build_service(Paths.resolve(data))
    service.settings.save(apply_patch(service.settings.load(), {"smtp": {"password": "hunter2"}}))
    result = runner.invoke(cli, ["config", "export", "--data", data])
    assert result.exit_code == 0, result.output
    exported = json.loads(result.stdout)
    assert "password" not in exported["smtp"]
    assert "hunter2" not in result.stdout


def test_config_import_replaces_the_configuration(tmp_path: Path) -> None:
    data = installed(tmp_path)
    source = tmp_path / "config.json"
    source.write_text(json.dumps({"device": {"name": "Gate 2"}, "smtp": {"port": 587}}))
    result = runner.invoke(cli, ["config", "import", str(source), "--data", data])
    assert result.exit_code == 0, result.output
    loaded = build_service(Paths.resolve(data)).settings.load()
    assert loaded.device.name == "Gate 2"
    assert loaded.smtp.port == 587


def test_config_import_of_a_bad_file_names_the_field_and_changes_nothing(tmp_path: Path) -> None:
    data = installed(tmp_path)
    source = tmp_path / "config.json"
    source.write_text(json.dumps({"device": {"name": "Gate 2"}, "smtp": {"port": 0}}))
    result = runner.invoke(cli, ["config", "import", str(source), "--data", data])
    assert result.exit_code == 1
    assert "smtp.port" in result.output
    assert build_service(Paths.resolve(data)).settings.load().device.name == "doormail"


def test_config_export_shows_a_password_in_the_camera_url_as_stars_and_import_keeps_it(
    tmp_path: Path,
) -> None:
    data = str(tmp_path / "data")
    service = build_service(Paths.resolve(data))
    url = "rtsp://viewer:cam-s3cret@cam.example/stream1"
    service.settings.save(
        apply_patch(service.settings.load(), {"camera": {"source": "rtsp", "url": url}})
    )
    exported = runner.invoke(cli, ["config", "export", "--data", data])
    assert exported.exit_code == 0, exported.output
    assert "cam-s3cret" not in exported.stdout
    assert json.loads(exported.stdout)["camera"]["url"] == "rtsp://viewer:***@cam.example/stream1"
    file = tmp_path / "config.json"
    file.write_text(exported.stdout)
    imported = runner.invoke(cli, ["config", "import", str(file), "--data", data])
    assert imported.exit_code == 0, imported.output
    assert build_service(Paths.resolve(data)).settings.load().camera.url == url


def test_config_import_that_moves_the_smtp_server_without_the_password_is_refused(
    tmp_path: Path,
) -> None:
    data = str(tmp_path / "data")
    service = build_service(Paths.resolve(data))
    login = {"server": "mx.example.com", "username": "door", "password": "S3cretSMTPpw"}
    service.settings.save(apply_patch(service.settings.load(), {"smtp": login}))
    document = service.settings.load().exported()
    document["smtp"]["server"] = "127.0.0.1"
    file = tmp_path / "config.json"
    file.write_text(json.dumps(document))
    result = runner.invoke(cli, ["config", "import", str(file), "--data", data])
    assert result.exit_code == 1
    said = " ".join(result.stderr.split())
    assert "smtp.password: smtp.server changed" in said
    assert "nothing was changed" in said
    assert build_service(Paths.resolve(data)).settings.load().smtp.server == "mx.example.com"


def test_config_import_of_a_file_that_is_not_json_is_a_clear_error(tmp_path: Path) -> None:
    source = tmp_path / "config.json"
    source.write_text("{")
    result = runner.invoke(cli, ["config", "import", str(source), "--data", installed(tmp_path)])
    assert result.exit_code == 1
    assert "cannot read" in result.output
    assert "Traceback" not in result.output


def test_token_create_prints_an_events_token_that_works(tmp_path: Path) -> None:
    data = installed(tmp_path)
    result = runner.invoke(cli, ["token", "create", "door-1", "--data", data])
    assert result.exit_code == 0
    token = result.stdout.strip()
    caller = build_service(Paths.resolve(data)).accounts.check_token(token)
    assert caller == Caller("door-1", "events")


def test_token_create_with_scope_admin_makes_a_token_for_everything(tmp_path: Path) -> None:
    data = installed(tmp_path)
    result = runner.invoke(cli, ["token", "create", "ha", "--scope", "admin", "--data", data])
    assert result.exit_code == 0, result.output
    caller = build_service(Paths.resolve(data)).accounts.check_token(result.stdout.strip())
    assert caller == Caller("ha", "admin")


def test_token_create_with_an_unknown_scope_names_it_and_makes_nothing(tmp_path: Path) -> None:
    data = installed(tmp_path)
    result = runner.invoke(cli, ["token", "create", "ha", "--scope", "root", "--data", data])
    assert result.exit_code == 1
    assert "--scope: must be events or admin" in result.stderr
    assert build_service(Paths.resolve(data)).accounts.tokens() == []


def test_token_list_shows_name_scope_created_and_last_used_but_not_the_token(
    tmp_path: Path,
) -> None:
    data = str(tmp_path / "data")
    accounts = build_service(Paths.resolve(data)).accounts
    door = accounts.create_token("door-1")
    accounts.create_token("installer", scope="admin")
    accounts.check_token(door)
    result = runner.invoke(cli, ["token", "list", "--data", data], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(line for line in lines if "name" in line)
    assert header.split()[1:8:2] == ["name", "scope", "created", "last"]
    door_line = next(line for line in lines if "door-1" in line)
    assert "events" in door_line and "never" not in door_line
    installer_line = next(line for line in lines if "installer" in line)
    assert "admin" in installer_line and "never" in installer_line
    assert door not in result.stdout


def test_token_revoke_ends_the_token(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    token = build_service(Paths.resolve(data)).accounts.create_token("door-1")
    result = runner.invoke(cli, ["token", "revoke", "door-1", "--data", data])
    assert result.exit_code == 0, result.output
    assert "door-1 revoked" in result.stdout
    assert build_service(Paths.resolve(data)).accounts.check_token(token) is None
    again = runner.invoke(cli, ["token", "revoke", "door-1", "--data", data])
    assert again.exit_code == 1
    assert "no token named 'door-1'" in again.stderr


def test_listen_is_host_and_port() -> None:
    assert parse_listen("0.0.0.0:8480") == ("0.0.0.0", 8480)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    for bad in ("8480", "host:", "host:99999", "host:http"):
        try:
            parse_listen(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was accepted")


def test_test_email_while_smtp_service_enabled_is_off_says_no_event_mail_will_go_out(
    tmp_path: Path,
) -> None:
    from aiosmtpd.controller import Controller

    from tests.conftest import free_port
    from tests.scripted_smtp import Scripted

    data = installed(tmp_path)
    service = build_service(Paths.resolve(data))
    controller = Controller(Scripted(), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        smtp = {"server": "127.0.0.1", "port": controller.port, "security": "none"}
        smtp["from"] = "door@example.org"
        service.settings.save(apply_patch(service.settings.load(), {"smtp": smtp}))
        result = runner.invoke(cli, ["test-email", "--to", "me@example.com", "--data", data])
    finally:
        controller.stop()
    assert result.exit_code == 0, result.output
    said = " ".join(result.stdout.split())
    assert "The server accepted the test e-mail." in said
    assert (
        "warning: SMTP Service Enabled is off: no event mail will go out until it is ticked" in said
    )


@pytest.fixture
def freezing(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many objects were frozen out of the collector's reach when the service began to
    run; the test process's own are given back afterwards. The log stays as it is: sent to the
    runner's stream, which closes, it would fail every later test's log line."""
    monkeypatch.setattr(doormail.cli, "configure", lambda *_: None)
    gc.unfreeze()
    seen: list[int] = []
    yield seen
    gc.unfreeze()


def test_serve_takes_what_startup_made_out_of_full_collections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, freezing: list[int]
) -> None:
    monkeypatch.setattr(uvicorn, "run", lambda *_, **__: freezing.append(gc.get_freeze_count()))
    data = installed(tmp_path)
    result = runner.invoke(cli, ["serve", "--data", data, "--listen", "127.0.0.1:8480"])
    assert result.exit_code == 0, result.output
    assert freezing and freezing[0] > 10_000


def test_the_worker_takes_what_startup_made_out_of_full_collections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, freezing: list[int]
) -> None:
    async def until_stopped(_run: object) -> None:
        freezing.append(gc.get_freeze_count())

    monkeypatch.setattr(doormail.cli, "_until_stopped", until_stopped)
    result = runner.invoke(cli, ["worker", "--data", installed(tmp_path)])
    assert result.exit_code == 0, result.output
    assert freezing and freezing[0] > 10_000
