"""A crash loses no mail: a real `doormail serve` is killed (SIGKILL) with mail queued for a
server that is down; a new process delivers every mail once the server is up."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from doormail.mail import OutgoingMessage
from doormail.outbox import Admin, OutboxItem, Queue
from doormail.store import open_engine
from doormail.store.engine import sqlite_url
from tests.conftest import RunningService, free_port, start_serve
from tests.outbox.helpers import queue_committed

MAILS = 5


class Collecting:
    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(envelope.original_content)
        return "250 2.0.0 Ok: queued"


@pytest.fixture
def served() -> Iterator[list[RunningService]]:
    """Every process a test starts, stopped at the end whatever happened."""
    processes: list[RunningService] = []
    try:
        yield processes
    finally:
        for process in processes:
            process.stop()


def mail(n: int) -> OutgoingMessage:
    recipient = f"crash-{uuid.uuid4().hex[:8]}@example.com"
    return OutgoingMessage(
        event_id=f"crash-{n}",
        kind="send_email",
        sender="door@example.org",
        recipient=recipient,
        subject=f"Mail {n}",
        message_id=f"<{uuid.uuid4().hex}@doormail>",
        data=f"To: {recipient}\r\nSubject: Mail {n}\r\n\r\nMail number {n}.\r\n".encode(),
    )


def wait_for(
    outbox: Admin, ids: list[str], done: Callable[[OutboxItem], bool], within: float
) -> list[OutboxItem]:
    deadline = time.monotonic() + within
    while True:
        items = [outbox.get(i) for i in ids]
        if all(item is not None and done(item) for item in items):
            return [item for item in items if item is not None]
        assert time.monotonic() < deadline, f"not reached within {within} s: {items}"
        time.sleep(0.1)


def test_mail_queued_when_the_service_is_killed_is_delivered_by_the_next_process(
    tmp_path: Path, served: list[RunningService]
) -> None:
    data_dir = tmp_path / "served"
    smtp_port = free_port()  # nothing listens here yet: the server is down
    first = start_serve(data_dir)
    served.append(first)
    with first.client() as client:
        reply = client.patch(
            "/api/config",
            json={
                "smtp": {
                    "enabled": True,
                    "server": "127.0.0.1",
                    "port": smtp_port,
                    "security": "none",
                    "from": "door@example.org",
                }
            },
        )
        assert reply.status_code == 200, reply.text
    # Queued by another process on the same database, as a second doormail would; the
    # service finds it on its next poll.
    engine = open_engine(sqlite_url(data_dir))
    outbox = Admin(engine)
    queued = queue_committed(engine, Queue(engine), [mail(n) for n in range(MAILS)], 3600)
    ids = [item.id for item in queued]
    # The first process found the server unreachable: the mails wait for it, not counted as tried.
    wait_for(
        outbox,
        ids,
        lambda i: (
            i.status == "queued"
            and (i.last_error or "").startswith("SMTP server unreachable since ")
        ),
        within=15,
    )

    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    assert {item.status for item in wait_for(outbox, ids, lambda i: True, 1)} == {"queued"}

    handler = Collecting()
    controller = Controller(handler, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        second = start_serve(data_dir)
        served.append(second)
        sent = wait_for(outbox, ids, lambda i: i.status == "sent", within=30)
    finally:
        controller.stop()
    assert len(sent) == MAILS
    assert sorted(handler.received) == sorted(outbox.message(i) for i in ids)
