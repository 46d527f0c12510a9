"""Several processes, one outbox (SPEC section 11): two `doormail serve` and two `doormail worker`
processes on one PostgreSQL database, events spread over both serve processes (some of an id
posted to both at once, some calls ringing on one and ending on the other), one serve and one
worker SIGKILLed in the middle. Every mail arrives at the SMTP lab, a second copy only of a mail
that was in flight at the kill, none stays `sending` once the lease has run out, and a repeated
event id or a call spread over two processes gives one set of mails."""

from __future__ import annotations

import email
import email.policy
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from doormail.app import Paths, build_service
from doormail.settings import apply_patch
from doormail.store import tables
from tests.conftest import (
    ADMIN_PASSWORD,
    Lab,
    RunningService,
    emptied,
    start_serve,
)

EVENTS = 240
LEASE_AND_MARGIN = 60.0


@pytest.fixture
def database(postgres_engine: Engine, tmp_path: Path, lab: Lab) -> Iterator[str]:
    """The shared PostgreSQL database, set up and configured to mail the lab."""
    emptied(postgres_engine)
    url = postgres_engine.url.render_as_string(hide_password=False)
    setup = build_service(Paths.resolve(str(tmp_path / "setup"), url))
    setup.accounts.ensure_admin(ADMIN_PASSWORD)
    smtp = {"enabled": True, "server": lab.host, "port": lab.plain, "security": "none"}
    smtp["from"] = "door@example.org"
    setup.settings.save(
        apply_patch(setup.settings.load(), {"smtp": smtp, "email_on_call": {"send": "any"}})
    )
    setup.engine.dispose()
    yield url


def _worker(data: Path, url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "doormail", "worker", "--data", str(data), "--database", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _held_by(engine: Engine, *pids: int) -> set[str]:
    """The Message-IDs of the mail processes `pids` held under their lease (a lease owner is
    host:pid:nonce): what was in flight when they were killed."""
    outbox = tables.outbox.c
    with engine.connect() as connection:
        rows = connection.execute(
            select(outbox.message_id, outbox.lease_owner).where(outbox.status == "sending")
        ).all()
    return {
        row.message_id for row in rows if any(f":{pid}:" in (row.lease_owner or "") for pid in pids)
    }


def _arrived(lab: Lab, to: str) -> Counter[str]:
    """How many copies of each Message-ID reached `to`."""
    found: Counter[str] = Counter()
    for path in lab.delivered():
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        if to.encode() not in data[:4096]:
            continue
        message = email.message_from_bytes(data, policy=email.policy.default)
        if str(message.get("Delivered-To", "")).lower() == to:
            found[str(message["Message-ID"])] += 1
    return found


def _post(targets: list[RunningService], body: dict[str, Any], first: int) -> dict[str, Any]:
    """Post to targets[first], or to the other one while it is down; the answer."""
    for attempt in range(40):
        target = targets[(first + attempt) % len(targets)]
        try:
            reply = httpx.post(
                f"{target.url}/api/events", json=body, auth=("admin", ADMIN_PASSWORD), timeout=10
            )
        except httpx.HTTPError:
            time.sleep(0.05)
            continue
        if reply.status_code == 202:
            answer: dict[str, Any] = reply.json()
            return answer
        assert reply.status_code == 503, reply.text
        time.sleep(0.1)
    raise AssertionError(f"no serve process took {body}")


def test_two_serve_and_two_worker_processes_share_one_outbox_through_kills(
    database: str, postgres_engine: Engine, tmp_path: Path, lab: Lab
) -> None:
    run = uuid.uuid4().hex[:10]
    to = f"several-{run}@example.com"
    serves = [
        start_serve(tmp_path / f"serve-{n}", options=["--database", database]) for n in (1, 2)
    ]
    workers = [_worker(tmp_path / f"worker-{n}", database) for n in (1, 2)]
    answers: list[dict[str, Any]] = []
    try:
        # Every mail to one address of this run (the lab's maildir is shared with other tests).
        with serves[0].client() as client:
            assert (
                client.patch("/api/config", json={"email_on_call": {"default_to": to}}).status_code
                == 200
            )
        time.sleep(1.0)  # the other processes see the change within a second
        for n in range(EVENTS):
            if n == EVENTS // 2:
                serves[0].process.send_signal(signal.SIGKILL)
                workers[0].send_signal(signal.SIGKILL)
                serves[0].process.wait()
                workers[0].wait()
                in_flight = _held_by(postgres_engine, serves[0].process.pid, workers[0].pid)
            kind = n % 3
            event_id = f"{run}-{n}"
            ended = {"type": "call.ended", "id": event_id, "called": "101", "answered": False}
            if kind == 0:  # the same event posted to both processes at once
                with ThreadPoolExecutor(2) as pool:
                    both = list(pool.map(lambda i: _post(serves, ended, i), (0, 1)))  # noqa: B023
                assert both[0]["emails"] == both[1]["emails"], both
                answers.append(both[0])
            elif kind == 1:  # a call ringing on one process and ending on the other
                call = {"call_id": f"call-{event_id}", "called": "101"}
                _post(serves, {"type": "call.ringing", "id": f"{event_id}-r", **call}, 0)
                answers.append(_post(serves, {**ended, **call}, 1))
            else:
                answers.append(_post(serves, ended, n % 2))
        assert all(len(answer["emails"]) == 1 for answer in answers), answers[:3]

        deadline = time.monotonic() + LEASE_AND_MARGIN
        outbox = tables.outbox.c
        while True:
            with postgres_engine.connect() as connection:
                rows = connection.execute(
                    select(outbox.message_id, outbox.status, outbox.lease_owner)
                ).all()
            if all(row.status == "sent" for row in rows) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert Counter(row.status for row in rows) == {"sent": EVENTS}, "none stuck in sending"
        expected = {row.message_id for row in rows}
        while set(_arrived(lab, to)) != expected and time.monotonic() < deadline + 15:
            time.sleep(0.2)
        copies = _arrived(lab, to)
        assert set(copies) == expected, f"{len(expected - set(copies))} mails never arrived"
        twice = {message_id for message_id, count in copies.items() if count > 1}
        assert twice <= in_flight, "a second copy only of what the killed processes held"
    finally:
        for serve in serves:
            serve.stop()
        for process in workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(15)
