"""A database that fails under the service (SPEC section 11): PostgreSQL going away while events
arrive is answered 503 with a clear message, never 500, the service reconnects by itself and
loses nothing it acknowledged; SQLite out of space is answered 503 "storage full", nothing is
damaged, and events are taken again once there is room."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select, text
from sqlalchemy.engine import make_url

from doormail.app import Paths, Service, build_service
from doormail.settings import apply_patch
from doormail.store import tables
from doormail.web.app import create_app
from tests.conftest import ADMIN_PASSWORD, EVENTS_CONFIG, basic_auth, emptied
from tests.tcp_proxy import TcpProxy


def _client(service: Service) -> TestClient:
    service.accounts.ensure_admin(ADMIN_PASSWORD)
    service.settings.save(apply_patch(service.settings.load(), EVENTS_CONFIG))
    return TestClient(create_app(service), headers=basic_auth("admin", ADMIN_PASSWORD))


def _missed_call(event_id: str) -> dict[str, Any]:
    return {"type": "call.ended", "id": event_id, "called": "101", "answered": False}


def _stored_events(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.execute(select(tables.events.c.id)).scalars())


@pytest.fixture
def through_proxy(postgres_engine: Engine, tmp_path: Path) -> Iterator[tuple[Service, TcpProxy]]:
    """The service on PostgreSQL reached through a proxy the test stops and starts."""
    emptied(postgres_engine)
    url = make_url(postgres_engine.url.render_as_string(hide_password=False))
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    service = build_service(Paths.resolve(str(tmp_path / "data"), proxied))
    try:
        yield service, proxy
    finally:
        proxy.stop()
        service.engine.dispose()


def test_postgresql_going_away_is_503_then_the_service_reconnects_and_lost_nothing(
    through_proxy: tuple[Service, TcpProxy], postgres_engine: Engine
) -> None:
    service, proxy = through_proxy
    answers: list[tuple[str, int, str]] = []
    stop = threading.Event()

    def post(client: TestClient) -> None:
        while not stop.is_set():
            event_id = uuid.uuid4().hex
            reply = client.post("/api/events", json=_missed_call(event_id))
            message = reply.json().get("error", {}).get("message", "")
            answers.append((event_id, reply.status_code, message))
            time.sleep(0.01)

    with _client(service) as client:
        # The password checked once first (at most two checks run at once, the rest get 429).
        assert client.get("/api/config").status_code == 200
        posters = [threading.Thread(target=post, args=(client,)) for _ in range(3)]
        for poster in posters:
            poster.start()
        time.sleep(1.0)
        proxy.stop()  # the server restarts: connections cut, new ones refused
        time.sleep(2.0)
        proxy.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (answers and answers[-1][1] == 202):
            time.sleep(0.1)
        time.sleep(1.0)
        stop.set()
        for poster in posters:
            poster.join()

    statuses = {status for _, status, _ in answers}
    assert statuses <= {202, 503}, [a for a in answers if a[1] not in (202, 503)][:3]
    refused = [message for _, status, message in answers if status == 503]
    assert refused and all("database is unavailable" in m for m in refused), refused[:3]
    assert answers[-1][1] == 202, "it reconnected by itself"
    acknowledged = {event_id for event_id, status, _ in answers if status == 202}
    assert acknowledged <= _stored_events(postgres_engine)


def test_connections_the_server_ends_while_events_arrive_are_503_at_worst_and_lose_nothing(
    postgres_engine: Engine, tmp_path: Path
) -> None:
    url = emptied(postgres_engine).url.render_as_string(hide_password=False)
    service = build_service(Paths.resolve(str(tmp_path / "data"), url))
    answers: list[tuple[str, int]] = []
    stop = threading.Event()

    def post(client: TestClient) -> None:
        while not stop.is_set():
            event_id = uuid.uuid4().hex
            answers.append(
                (event_id, client.post("/api/events", json=_missed_call(event_id)).status_code)
            )

    ours = text(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    with _client(service) as client:
        assert client.get("/api/config").status_code == 200
        posters = [threading.Thread(target=post, args=(client,)) for _ in range(3)]
        for poster in posters:
            poster.start()
        for _ in range(5):  # an administrator (or a failover) ends every session of the database
            time.sleep(0.4)
            with postgres_engine.connect() as connection:
                connection.execute(ours)
        time.sleep(0.5)
        stop.set()
        for poster in posters:
            poster.join()
        assert client.post("/api/events", json=_missed_call("after")).status_code == 202
    service.engine.dispose()
    assert {status for _, status in answers} <= {202, 503}
    acknowledged = {event_id for event_id, status in answers if status == 202}
    assert acknowledged and acknowledged <= _stored_events(postgres_engine)


def test_sqlite_out_of_space_is_503_storage_full_and_works_again_with_room(
    tmp_path: Path,
) -> None:
    service = build_service(Paths.resolve(str(tmp_path / "data")))
    engine = service.engine
    room: dict[str, int | None] = {"pages": None}

    def limit(dbapi_connection: Any, _record: Any) -> None:
        if room["pages"] is not None:
            dbapi_connection.execute(f"PRAGMA max_page_count={room['pages']}")

    event.listen(engine, "connect", limit)
    with _client(service) as client:
        assert client.post("/api/events", json=_missed_call("before")).status_code == 202
        with engine.connect() as connection:
            used = int(connection.execute(text("PRAGMA page_count")).scalar_one())
        room["pages"] = used + 2
        engine.dispose()  # every connection from now on has the limit
        replies = [client.post("/api/events", json=_missed_call(f"full-{n}")) for n in range(40)]
        full = [reply for reply in replies if reply.status_code != 202]
        assert full, "the disk filled up"
        assert {reply.status_code for reply in full} == {503}
        assert "storage full" in full[0].json()["error"]["message"]

        room["pages"] = None
        engine.dispose()
        assert client.post("/api/events", json=_missed_call("after")).status_code == 202
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
    accepted = {f"full-{n}" for n, reply in enumerate(replies) if reply.status_code == 202}
    assert _stored_events(engine) == {"before", "after", *accepted}
    engine.dispose()
