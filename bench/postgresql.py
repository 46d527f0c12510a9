"""The outbox on PostgreSQL (SPEC sections 10 and 11), each figure beside its SQLite reference
measured in the same run:

- `pg_mails_per_s_1`: the leg of `mails_per_s` (the worker draining queued 20 kB messages into
  the lab's smtp-sink, claim, send, record) with the outbox on PostgreSQL, against
  `sqlite_mails_per_s`, the same leg on SQLite in this run (best of a few rounds each);
- `pg_mails_per_s_2`: two `doormail worker` processes sharing the outbox (SKIP LOCKED claims),
  against `pg_mails_per_s_1_process`, one such process; with the CPU seconds per 1,000 mails of
  each process, from which the scaling on more cores is projected;
- `pg_events_per_s`: `events_per_s` (intake → outbox, durable, 10,000 users) on PostgreSQL,
  against `sqlite_events_per_s` of the same run.

The worker processes are started with sending off, sending is switched on, and they are timed
from the first mail sent to the last, so that neither Python's start-up nor the round in which
they notice the change is counted."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
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
        _sending(service, True)
        while (first := _sent(service)) == 0:
            time.sleep(0.01)
        cpu_before = [_cpu_seconds(p.pid) for p in processes]
        started = time.perf_counter()
        while _sent(service) < MAILS:
            if time.perf_counter() - started > 600:
                raise RuntimeError(f"only {_sent(service)} of {MAILS} mails were sent")
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        cpu = [
            _cpu_seconds(p.pid) - before for p, before in zip(processes, cpu_before, strict=True)
        ]
    finally:
        for process in processes:
            process.terminate()
            process.wait(15)
        service.engine.dispose()
    timed = MAILS - first
    return timed / elapsed, [seconds * 1000 / timed for seconds in cpu]


def _sent(service: Service) -> int:
    with service.engine.connect() as connection:
        query = select(func.count()).where(tables.outbox.c.status == "sent")
        return int(connection.execute(query).scalar_one())


def drain_rate(on_postgresql: bool) -> float:
    """The leg of `mails_per_s` (bench/delivery.py), best of ROUNDS, each on a new database."""
    rates = []
    for _ in range(delivery.ROUNDS):
        database: AbstractContextManager[str | None] = (
            postgres_database() if on_postgresql else nullcontext(None)
        )
        with database as url, tempfile.TemporaryDirectory(prefix="doormail-bench-") as folder:
            service = build_service(Paths.resolve(str(Path(folder) / "data"), url))
            _sending(service, True)
            with service.engine.begin() as connection:
                messages = [delivery.message(n) for n in range(MAILS)]
                service.queue.enqueue(connection, messages, 3600)
            started = time.perf_counter()
            attempted = asyncio.run(service.worker.drain())
            rates.append(MAILS / (time.perf_counter() - started))
            sent = _sent(service)
            service.engine.dispose()
        if attempted != MAILS or sent != MAILS:
            raise RuntimeError(f"the worker sent {sent} of {MAILS} mails ({attempted} attempted)")
    return max(rates)


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
        sqlite_rate = drain_rate(on_postgresql=False)
        one = drain_rate(on_postgresql=True)
        with postgres_database() as url, tempfile.TemporaryDirectory() as folder:
            one_process, one_cpu = worker_processes_rate(Path(folder), url, 1)
        with postgres_database() as url, tempfile.TemporaryDirectory() as folder:
            two, two_cpu = worker_processes_rate(Path(folder), url, 2)
    figures += [
        ("sqlite_mails_per_s", round(sqlite_rate, 1), "mails/s"),
        ("pg_mails_per_s_1", round(one, 1), "mails/s"),
        ("pg_mails_per_s_1_process", round(one_process, 1), "mails/s"),
        ("pg_mails_per_s_2", round(two, 1), "mails/s"),
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
