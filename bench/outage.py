"""`outage_drain_s` and `outage_probes` (issue 16, SPEC section 8 "The server as a whole"):
10,000 mails (20 kB, as `mails_per_s`) are queued while the SMTP server is down; the service's
own worker runs throughout with its default probing. `outage_probes` counts the connections it
made during the outage (the port then answers 421 at greeting, as a server in maintenance does,
so that every connection is seen); `outage_drain_s` is the time from the server's return (a
Postfix `smtp-sink` of our own started on that port) until the last mail is recorded as sent,
which is after its 250. Its target, `2 × 10,000 / mails_per_s + 1 s`, is printed as
`outage_drain_target_s` with `mails_per_s` measured in the same run (the `delivery` leg's
measurement against the lab's sink). `outage_detect_s` is the part of the drain spent before
the first mail went out: up to one probe interval (at most 8 s), by when the server returns.

The outage lasts `BENCH_OUTAGE_S` seconds (default 120, the issue's two minutes). A shorter one
gives the same `outage_drain_s`: the probe interval reaches its ceiling after 16 s, and the
mails waiting are the same 10,000 however long they waited; only `outage_probes` grows with
the outage's length (about one per 8 s)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.delivery import HOST, MAILS, message, sink, worker_rate
from doormail.app import Paths, Service, build_service
from doormail.settings import apply_patch

QUEUED = int(os.environ.get("BENCH_OUTAGE_MAILS", "10000"))
OUTAGE = float(os.environ.get("BENCH_OUTAGE_S", "120"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Maintenance:
    """The port while the server is down: each connection counted and greeted with 421."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connections = 0
        self._listener: asyncio.Server | None = None

    async def __aenter__(self) -> Maintenance:
        async def refuse(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.write(b"421 4.3.2 Service shutting down, try later\r\n")
            with contextlib.suppress(OSError):
                await writer.drain()
            writer.close()

        self._listener = await asyncio.start_server(refuse, HOST, self.port)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._listener is not None
        self._listener.close()
        await self._listener.wait_closed()


@contextlib.contextmanager
def smtp_sink(port: int) -> Iterator[None]:
    """Postfix's discard server on `port`, for as long as the block lasts."""
    binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    process = subprocess.Popen(
        [binary, *user, f"{HOST}:{port}", "1024"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        process.terminate()
        process.wait(10)


def prepared(folder: Path, port: int) -> Service:
    service = build_service(Paths.resolve(str(folder / "data")))
    smtp = {"enabled": True, "server": HOST, "port": port, "security": "none"}
    smtp["from"] = "bench@example.org"
    service.settings.save(apply_patch(service.settings.load(), {"smtp": smtp}))
    return service


def enqueue(service: Service, start: int, count: int) -> None:
    with service.engine.begin() as connection:
        messages = [message(n) for n in range(start, start + count)]
        service.queue.enqueue(connection, messages, 86400)


async def outage_and_return(service: Service, port: int) -> tuple[float, float, int]:
    """(seconds from the return to the first and to the last mail sent, probes made)."""
    worker = asyncio.create_task(service.worker.run())
    try:
        async with Maintenance(port) as down:
            began = time.monotonic()
            # The mails come in during the first part of the outage, 500 to a commit.
            for start in range(0, QUEUED, 500):
                await asyncio.to_thread(enqueue, service, start, min(500, QUEUED - start))
                service.worker.notify()
            await asyncio.sleep(max(OUTAGE - (time.monotonic() - began), 0.0))
        with smtp_sink(port):
            back = time.monotonic()
            first = await sent_at(service, 1, back)
            last = await sent_at(service, QUEUED, back)
        return first - back, last - back, down.connections
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)


async def sent_at(service: Service, count: int, since: float) -> float:
    """When at least `count` mails are recorded as sent (fails after 120 s)."""
    while (await asyncio.to_thread(service.outbox.counts))["sent"] < count:
        if time.monotonic() - since > 120:
            raise RuntimeError(f"fewer than {count} mails sent 120 s after the server's return")
        await asyncio.sleep(0.01)
    return time.monotonic()


def run() -> list[tuple[str, float, str]]:
    with sink():
        rate = worker_rate(MAILS)
    with tempfile.TemporaryDirectory(prefix="doormail-bench-") as folder:
        port = free_port()
        service = prepared(Path(folder), port)
        detect, drain, probes = asyncio.run(outage_and_return(service, port))
        service.engine.dispose()
    return [
        ("outage_drain_s", round(drain, 2), "s"),
        ("outage_drain_target_s", round(2 * QUEUED / rate + 1, 2), "s"),
        ("outage_detect_s", round(detect, 2), "s"),
        ("outage_probes", probes, "connections"),
        ("outage_mails_per_s", round(rate, 1), "mails/s"),
    ]


if __name__ == "__main__":
    for name, value, unit in run():
        print(name, value, unit)
