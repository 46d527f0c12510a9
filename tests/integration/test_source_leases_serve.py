"""One process at a time follows each source (SPEC 11): two `doormail serve` processes on one
PostgreSQL database and one emulated 2N intercom: only one of them subscribes; SIGKILLed, the
other takes the intercom over within 30 s and its events are taken, none twice."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from doormail.store import tables
from tests.conftest import RunningService, start_serve
from tests.intercom2n.emulator import IntercomThread

pytestmark = pytest.mark.integration

USER, PASSWORD = "api", "api-password"
TAKEOVER_S = 30.0


@pytest.fixture
def two(postgres_engine: Engine, tmp_path: Path) -> Iterator[list[RunningService]]:
    url = postgres_engine.url.render_as_string(hide_password=False)
    with postgres_engine.begin() as connection:
        for table in reversed(tables.metadata.sorted_tables):
            connection.execute(table.delete())
    started = [start_serve(tmp_path / name, options=("--database", url)) for name in ("one", "two")]
    try:
        yield started
    finally:
        for service in started:
            service.stop()


def holder(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return connection.execute(select(tables.source_leases.c.holder)).scalar()


def until(check: object, seconds: float) -> float:
    started = time.monotonic()
    while not check():  # type: ignore[operator]
        assert time.monotonic() - started < seconds, "timed out"
        time.sleep(0.2)
    return time.monotonic() - started


def test_one_process_follows_an_intercom_and_another_takes_over_when_it_dies(
    two: list[RunningService], postgres_engine: Engine
) -> None:
    with IntercomThread(user=USER, password=PASSWORD) as intercom:
        source = {"kind": "2n", "url": intercom.url, "username": USER, "password": PASSWORD}
        with two[0].client() as client:
            assert (
                client.post("/api/devices", json={"id": "door", "source": source}).status_code
                == 201
            )
        until(lambda: len(intercom.intercom.log.channels) == 1, 15)
        time.sleep(6)  # both have looked at the devices at least once more
        assert len(intercom.intercom.log.channels) == 1
        first = holder(postgres_engine)
        assert first is not None
        dying = next(s for s in two if f":{s.process.pid}:" in first)
        other = next(s for s in two if s is not dying)
        dying.process.send_signal(signal.SIGKILL)
        dying.process.wait()
        with other.client() as client:
            took = until(
                lambda: client.get("/api/devices/door/status").json()["state"] == "connected",
                TAKEOVER_S,
            )
        assert took <= TAKEOVER_S
        assert holder(postgres_engine) not in (None, first)
        intercom.tamper()
        with postgres_engine.connect() as connection:

            def count() -> int:
                return len(connection.execute(select(tables.events.c.id)).all())

            until(lambda: count() == 1, 10)
