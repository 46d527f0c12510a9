"""`doormail outbox [--status S]`: the outbox as a table in the terminal."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from doormail import cli as command
from doormail.app import Paths, build_service
from doormail.cli import cli
from doormail.mail import OutgoingMessage
from tests.outbox.helpers import mark_failed, mark_sent, queue_committed

runner = CliRunner(env={"COLUMNS": "200"})  # a wide terminal: rows on one line each


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command's console is made at import with the width it found then (80 in a
    pytest-xdist worker, which sets COLUMNS), so it is widened here as well."""
    monkeypatch.setattr(command.console, "width", 200)


def message(recipient: str) -> OutgoingMessage:
    return OutgoingMessage(
        event_id="ev-1",
        kind="call",
        sender="door@example.org",
        recipient=recipient,
        subject="Call",
        message_id=f"<{recipient}>",
        data=b"Subject: Call\r\n\r\nRinging.\r\n",
    )


def test_outbox_command_shows_each_mail_with_its_state(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    service = build_service(Paths.resolve(data))
    queue = service.queue
    sent, failed = queue_committed(
        service.engine, queue, [message("a@x.org"), message("b@x.org")], 3600
    )
    queue.claim("test", 10, 60, now=time.time())
    mark_sent(queue, sent.id, "250 ok")
    mark_failed(queue, failed.id, "550 [no] such user")

    everything = runner.invoke(cli, ["outbox", "--data", data])
    assert everything.exit_code == 0, everything.output
    assert "a@x.org" in everything.stdout and "b@x.org" in everything.stdout
    assert "sent" in everything.stdout and "failed" in everything.stdout
    assert "550 [no] such user" in everything.stdout  # shown as written, not as markup

    only_failed = runner.invoke(cli, ["outbox", "--status", "failed", "--data", data])
    assert only_failed.exit_code == 0, only_failed.output
    assert "b@x.org" in only_failed.stdout and "a@x.org" not in only_failed.stdout


def test_outbox_command_names_a_bad_status(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    build_service(Paths.resolve(data))
    result = runner.invoke(cli, ["outbox", "--status", "lost", "--data", data])
    assert result.exit_code == 1
    assert "--status" in result.output
