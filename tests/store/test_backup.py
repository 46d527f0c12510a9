"""`doormail backup FILE` and `doormail restore FILE` (SPEC section 1): a copy taken while events
flow holds every mail queued before it began, and goes back into an empty data folder only; on
PostgreSQL the command says to use pg_dump and shows how."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from doormail.app import Paths, build_service
from doormail.cli import cli
from doormail.settings import apply_patch
from doormail.store import tables
from doormail.web.app import create_app
from tests.conftest import ADMIN_PASSWORD, EVENTS_CONFIG, basic_auth

runner = CliRunner()


def test_a_backup_taken_while_events_flow_restores_with_every_mail_queued_before_it(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    service = build_service(Paths.resolve(str(data)))
    service.accounts.ensure_admin(ADMIN_PASSWORD)
    service.settings.save(apply_patch(service.settings.load(), EVENTS_CONFIG))
    # Without its lifespan the app runs no delivery worker: every mail stays queued.
    client = TestClient(create_app(service), headers=basic_auth("admin", ADMIN_PASSWORD))
    acknowledged: list[str] = []
    stop = threading.Event()

    def post() -> None:
        while not stop.is_set():
            event_id = uuid.uuid4().hex
            body = {"type": "call.ended", "id": event_id, "called": "101", "answered": False}
            if client.post("/api/events", json=body).status_code == 202:
                acknowledged.append(event_id)

    poster = threading.Thread(target=post)
    poster.start()
    try:
        while len(acknowledged) < 30:
            stop.wait(0.05)
        before = list(acknowledged)
        copy = tmp_path / "copy.sqlite3"
        made = runner.invoke(cli, ["backup", str(copy), "--data", str(data)])
        after = len(acknowledged)
        while len(acknowledged) < after + 10:  # and still flow after it
            stop.wait(0.05)
    finally:
        stop.set()
        poster.join()
    assert made.exit_code == 0, made.output
    assert copy.stat().st_mode & 0o777 == 0o600

    restored_dir = tmp_path / "restored"
    put_back = runner.invoke(cli, ["restore", str(copy), "--data", str(restored_dir)])
    assert put_back.exit_code == 0, put_back.output
    restored = build_service(Paths.resolve(str(restored_dir)))
    with restored.engine.connect() as connection:
        rows = connection.execute(select(tables.outbox.c.event_id, tables.outbox.c.status)).all()
    queued = {event_id for event_id, status in rows if status == "queued"}
    assert set(before) <= queued
    assert all(restored.outbox.message(item.id) for item in restored.outbox.page().items)
    restored.engine.dispose()
    service.engine.dispose()


def test_restore_goes_only_into_an_empty_data_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    build_service(Paths.resolve(str(data))).engine.dispose()
    copy = tmp_path / "copy.sqlite3"
    assert runner.invoke(cli, ["backup", str(copy), "--data", str(data)]).exit_code == 0
    refused = runner.invoke(cli, ["restore", str(copy), "--data", str(data)])
    assert refused.exit_code == 1
    assert "not empty" in refused.output


def test_a_backup_of_a_folder_without_doormail_says_where_it_looked(tmp_path: Path) -> None:
    result = runner.invoke(cli, ["backup", str(tmp_path / "c"), "--data", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert "no doormail database" in result.output and str(tmp_path / "none") in result.output


def test_a_backup_on_postgresql_shows_the_pg_dump_command(tmp_path: Path) -> None:
    url = "postgresql+psycopg://door:secret@db.example:5432/doormail"
    result = runner.invoke(cli, ["backup", str(tmp_path / "d.dump"), "--database", url])
    assert result.exit_code == 1
    assert "pg_dump --format=custom --file" in result.output
    assert "postgresql://door@db.example:5432/doormail" in result.output
    assert "secret" not in result.output
