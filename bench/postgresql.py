"""The outbox on PostgreSQL (SPEC sections 10 and 11), each figure beside its SQLite reference
measured in the same run:

- `pg_mails_per_s_1`: one `doormail worker` process draining queued 20 kB messages into the
  lab's smtp-sink, against `sqlite_mails_per_s_1`, the same on SQLite (the drain of
  `mails_per_s`, run in a worker process here too, so that both include the same work);
- `pg_mails_per_s_2`: two worker processes sharing the outbox (SKIP LOCKED claims), with the
  CPU seconds per 1,000 mails of each process, from which the scaling on more cores is projected;
- `pg_events_per_s`: `events_per_s` (intake → outbox, durable, 10,000 users) on PostgreSQL,
  against `sqlite_events_per_s` of the same run.

The workers are started with sending off and timed from the moment it is switched on (the change
counter tells them within a round), so that Python's start-up is not counted."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from bench import delivery, events
from doormail.app import Paths, Service, build_service
from doormail.settings import apply_patch
from doormail.store import open_engine, tables

POSTGRES_URL = os.environ.get(
    "DOORMAIL_BENCH_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/postgres"
)
MAILS = int(os.environ.get("BENCH_MAILS", "3000"))
TICKS = os.sysconf("SC_CLK_TCK")


@contextmanager
def postgres_database() -> Iterator[str]:
    """A database of its own on the PostgreSQL server, dropped afterwards."""
    name = f"doormail_bench_{uuid.uuid4().hex[:10]}"
    admin = open_engine(POSTGRES_URL)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def _sending(service: Service, enabled: bool) -> None:
    smtp = {"enabled": enabled, "server": delivery.HOST, "port": delivery.SINK_PORT}
    smtp |= {"security": "none", "from": "bench@example.org"}
    service.settings.save(apply_patch(service.settings.load(), {"smtp": smtp}))


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def worker_processes_rate(folder: Path, url: str | None, workers: int) -> tuple[float, list[float]]:
    """Mails per second of `workers` worker processes draining MAILS queued mails, and each
    process's CPU seconds per 1,000 mails."""
    service = build_service(Paths.resolve(str(folder / "data"), url))
    _sending(service, False)
    with service.engine.begin() as connection:
        service.queue.enqueue(connection, [delivery.message(n) for n in range(MAILS)], 3600)
    command = [sys.executable, "-m", "doormail", "worker", "--data", str(folder / "data")]
    if url is not None:
        command += ["--database", url]
    processes = [
        subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    try:
        time.sleep(3.0)  # started and idle
        cpu_before = [_cpu_seconds(p.pid) for p in processes]
        started = time.perf_counter()
        _sending(service, True)
        while _sent(service) < MAILS:
            if time.perf_counter() - started > 600:
                raise RuntimeError(f"only {_sent(service)} of {MAILS} mails were sent")
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        cpu = [
            _cpu_seconds(p.pid) - before for p, before in zip(processes, cpu_before, strict=True)
        ]
    finally:
        for process in processes:
            process.terminate()
            process.wait(15)
        service.engine.dispose()
    return MAILS / elapsed, [seconds * 1000 / MAILS for seconds in cpu]


def _sent(service: Service) -> int:
    with service.engine.connect() as connection:
        query = select(func.count()).where(tables.outbox.c.status == "sent")
        return int(connection.execute(query).scalar_one())


def events_rate(url: str | None) -> float:
    with tempfile.TemporaryDirectory(prefix="doormail-bench-") as folder:
        service = build_service(Paths.resolve(str(Path(folder) / "data"), url))
        service.settings.save(apply_patch(service.settings.load(), events.CONFIG))
        service.users.import_users(events.users(10_000))
        try:
            return asyncio.run(events.measure(service, 10_000))
        finally:
            service.engine.dispose()


def run() -> list[tuple[str, float, str]]:
    figures: list[tuple[str, float, str]] = []
    with delivery.sink():
        with tempfile.TemporaryDirectory(prefix="doormail-bench-") as folder:
            sqlite_rate, sqlite_cpu = worker_processes_rate(Path(folder), None, 1)
        with postgres_database() as url, tempfile.TemporaryDirectory() as folder:
            one, one_cpu = worker_processes_rate(Path(folder), url, 1)
        with postgres_database() as url, tempfile.TemporaryDirectory() as folder:
            two, two_cpu = worker_processes_rate(Path(folder), url, 2)
    figures += [
        ("sqlite_mails_per_s_1", round(sqlite_rate, 1), "mails/s"),
        ("pg_mails_per_s_1", round(one, 1), "mails/s"),
        ("pg_mails_per_s_2", round(two, 1), "mails/s"),
        ("sqlite_cpu_s_per_1000_mails", round(sqlite_cpu[0], 2), "s"),
        ("pg_cpu_s_per_1000_mails_1", round(one_cpu[0], 2), "s"),
    ]
    figures += [
        (f"pg_cpu_s_per_1000_mails_2_worker{n}", round(cpu, 2), "s")
        for n, cpu in enumerate(two_cpu, 1)
    ]
    sqlite_events = events_rate(None)
    with postgres_database() as url:
        pg_events = events_rate(url)
    figures += [
        ("sqlite_events_per_s", round(sqlite_events, 1), "events/s"),
        ("pg_events_per_s", round(pg_events, 1), "events/s"),
    ]
    return figures


if __name__ == "__main__":
    for name, value, unit in run():
        print(name, value, unit)
