"""`doormail worker`: the delivery worker as a process of its own on the same data folder, which
sends the mail queued before it started and the mail another process queues while it runs, and
stops when told to (SIGTERM), saying what it was doing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from doormail.app import Paths, Service, build_service
from doormail.outbox import OutboxItem
from doormail.settings import apply_patch
from tests.conftest import free_port
from tests.outbox.helpers import queue_committed, unique_mail
from tests.scripted_smtp import Scripted


@dataclass(frozen=True)
class Server:
    handler: Scripted
    port: int


@pytest.fixture
def server() -> Iterator[Server]:
    handler = Scripted()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield Server(handler, controller.port)
    finally:
        controller.stop()


@pytest.fixture
def installed(tmp_path: Path, server: Server) -> Service:
    """An installation whose SMTP server is `server`."""
    service = build_service(Paths.resolve(str(tmp_path / "data")))
    smtp = {"enabled": True, "server": "127.0.0.1", "port": server.port, "security": "none"}
    smtp["from"] = "door@example.org"
    service.settings.save(apply_patch(service.settings.load(), {"smtp": smtp}))
    return service


def wait_for(condition: Callable[[], bool], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "it did not happen in time"
        time.sleep(0.05)


def statuses(service: Service, *items: OutboxItem) -> set[str]:
    return {getattr(service.outbox.get(item.id), "status", "missing") for item in items}


def test_the_worker_delivers_mail_queued_before_and_while_it_runs_and_stops_on_sigterm(
    installed: Service, server: Server
) -> None:
    [before] = queue_committed(
        installed.engine, installed.queue, [unique_mail("a@example.com")], 3600
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "doormail", "worker", "--data", str(installed.paths.data_dir)],
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: len(server.handler.received) == 1)
        # Queued by this process, which has no way to wake the worker: its poll finds it.
        [meanwhile] = queue_committed(
            installed.engine, installed.queue, [unique_mail("b@example.com")], 3600
        )
        wait_for(lambda: len(server.handler.received) == 2)
        wait_for(lambda: statuses(installed, before, meanwhile) == {"sent"})
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=15)
    assert worker.returncode == 0, err
    assert "doormail worker delivering from sqlite:///" in out
    assert str(installed.paths.data_dir) in out
