"""The data folder is private (SPEC section 1): created 0700 with every file in it 0600 whatever
the umask, so that no other local user reads the SMTP password or a private key from the
database; an installation whose modes are looser is made private at start, with one log line."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from doormail.app import Paths, Service, build_service
from doormail.web.app import create_app
from tests.conftest import ADMIN_PASSWORD, basic_auth

SMTP = {"enabled": True, "server": "127.0.0.1", "port": 9, "from": "door@example.org"}


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The umask most systems give a user, under which new files are readable by everyone."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def modes(folder: Path) -> dict[str, str]:
    """The mode of the folder and of everything in it, by relative path."""
    return {
        str(path.relative_to(folder)): oct(stat.S_IMODE(path.lstat().st_mode))
        for path in [folder, *folder.rglob("*")]
    }


def private(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): oct(0o700 if path.is_dir() else 0o600)
        for path in [folder, *folder.rglob("*")]
    }


def used(service: Service) -> None:
    """Everything that writes into the data folder: the web UI's session key, events taken
    (the database and its -wal and -shm files), the client certificate's file for TLS."""
    service.accounts.ensure_admin(ADMIN_PASSWORD)
    with TestClient(create_app(service), headers=basic_auth("admin", ADMIN_PASSWORD)) as api:
        patch = {"smtp": SMTP, "email_on_call": {"send": "any", "default_to": "a@example.com"}}
        assert api.patch("/api/config", json=patch).status_code == 200
        events = [{"type": "call.ended", "called": "101", "answered": False}] * 3
        assert api.post("/api/events", json=events).status_code == 202
        service.certificates.tls_context(service.settings.load().smtp)
        data = service.paths.data_dir
        names = {path.name for path in data.iterdir()}
        assert {"doormail.sqlite3-wal", "doormail.sqlite3-shm", "session.key"} <= names
        assert (data / "tls" / "self-signed.pem").exists()


@pytest.mark.parametrize("first_start_apart", [True, False], ids=["in a child", "in process"])
def test_the_data_folder_and_every_file_in_it_are_private_whatever_the_umask(
    data_dir: Path, umask_022: None, first_start_apart: bool
) -> None:
    service = build_service(Paths.resolve(str(data_dir)), first_start_apart=first_start_apart)
    assert modes(data_dir) == private(data_dir)
    used(service)
    assert modes(data_dir) == private(data_dir)
    assert len(modes(data_dir)) >= 6


def test_an_installation_with_looser_modes_is_made_private_at_start_with_one_log_line(
    data_dir: Path, umask_022: None, caplog: pytest.LogCaptureFixture
) -> None:
    used(build_service(Paths.resolve(str(data_dir))))
    for path in [data_dir, *data_dir.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    with caplog.at_level(logging.INFO):
        build_service(Paths.resolve(str(data_dir)))
    assert modes(data_dir) == private(data_dir)
    [line] = [record for record in caplog.records if "private" in record.getMessage()]
    assert line.levelno == logging.WARNING
    message = line.getMessage()
    assert str(data_dir.resolve()) in message
    for name in ("doormail.sqlite3", "session.key", "tls", "self-signed.pem"):
        assert name in message
    assert "0755" in message and "0644" in message

    caplog.clear()
    build_service(Paths.resolve(str(data_dir)))
    assert not [record for record in caplog.records if "private" in record.getMessage()]
