"""`mails_per_s`: the delivery worker pushing already-queued 20 kB messages into the SMTP lab's
`smtp-sink` over one reused connection (claim, send, record: the whole drain), against
`reference_mails_per_s`: Postfix's C client `smtp-source -s 1 -d` (one session, one connection)
into the same sink with the same payload, measured in the same run. Both take the best of a few
alternating rounds, since the machine is shared. `idle_rss_mb`: a `doormail serve` just after
start-up."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from doormail.app import Paths, Service, build_service
from doormail.mail import OutgoingMessage
from doormail.settings import apply_patch

MAILS = int(os.environ.get("BENCH_MAILS", "3000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PAYLOAD = 20_000  # bytes of body, as smtp-source -l 20000
HOST = "127.0.0.1"
SINK_PORT = int(os.environ.get("SMTP_LAB_PORT_SINK", "2526"))
LAB = Path(__file__).resolve().parents[2] / "shared" / "lab" / "smtp-lab"


@contextlib.contextmanager
def sink() -> Iterator[None]:
    """The lab's smtp-sink, started for the benchmark unless it already runs (and then left)."""
    running = subprocess.run(["bash", str(LAB), "sink", "status"], capture_output=True)
    if running.returncode != 0:
        subprocess.run(["bash", str(LAB), "sink", "start"], check=True, capture_output=True)
    try:
        yield
    finally:
        if running.returncode != 0:
            subprocess.run(["bash", str(LAB), "sink", "stop"], capture_output=True)


def message(n: int) -> OutgoingMessage:
    head = (
        f"From: bench@example.org\r\nTo: bench@bench.invalid\r\nSubject: bench {n}\r\n"
        f"Message-ID: <bench-{n}@doormail>\r\n\r\n"
    ).encode()
    line = b"x" * 76 + b"\r\n"
    body = line * (PAYLOAD // len(line)) + b"x" * (PAYLOAD % len(line) - 2) + b"\r\n"
    return OutgoingMessage(
        event_id=f"bench-{n}",
        kind="send_email",
        sender="bench@example.org",
        recipient="bench@bench.invalid",
        subject=f"bench {n}",
        message_id=f"<bench-{n}@doormail>",
        data=head + body,
    )


def queued_service(folder: Path, count: int) -> Service:
    service = build_service(Paths.resolve(str(folder / "data")))
    smtp = {"enabled": True, "server": HOST, "port": SINK_PORT, "security": "none"}
    smtp["from"] = "bench@example.org"
    service.settings.save(apply_patch(service.settings.load(), {"smtp": smtp}))
    with service.engine.begin() as connection:
        service.queue.enqueue(connection, [message(n) for n in range(count)], 3600)
    return service


def worker_rate(count: int, settings: dict[str, Any] | None = None) -> float:
    """Mails a second of the worker draining `count` queued mails, with `settings` patched in
    after they were queued (as the worker reads them when it sends)."""
    with tempfile.TemporaryDirectory(prefix="doormail-bench-") as folder:
        service = queued_service(Path(folder), count)
        if settings is not None:
            service.settings.save(apply_patch(service.settings.load(), settings))
        started = time.perf_counter()
        attempted = asyncio.run(service.worker.drain())
        elapsed = time.perf_counter() - started
        sent = service.outbox.counts()["sent"]
        service.engine.dispose()
    if attempted != count or sent != count:
        raise RuntimeError(f"the worker sent {sent} of {count} mails ({attempted} attempted)")
    return count / elapsed


def reference_rate(count: int) -> float:
    source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    command = [source, "-s", "1", "-d", "-m", str(count), "-l", str(PAYLOAD)]
    started = time.perf_counter()
    subprocess.run([*command, f"{HOST}:{SINK_PORT}"], check=True, timeout=600)
    return count / (time.perf_counter() - started)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def idle_rss_mb(settle: float = 2.0) -> float:
    """Resident memory of `doormail serve` once it answers /healthz and has settled."""
    with tempfile.TemporaryDirectory(prefix="doormail-bench-") as folder:
        port = free_port()
        environment = {**os.environ, "DOORMAIL_ADMIN_PASSWORD": "bench-password"}
        command = [sys.executable, "-m", "doormail", "serve", "--data", folder]
        process = subprocess.Popen(
            [*command, "--listen", f"{HOST}:{port}"],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_healthy(f"http://{HOST}:{port}/healthz", process)
            time.sleep(settle)
            return resident_kib(process.pid) / 1024
        finally:
            process.terminate()
            process.wait(10)


def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"doormail serve exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError("doormail serve did not answer /healthz within 30 s")


def resident_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc")


def run() -> list[tuple[str, float, str]]:
    ours, reference = [], []
    with sink():
        for _ in range(ROUNDS):
            reference.append(reference_rate(MAILS))
            ours.append(worker_rate(MAILS))
    return [
        ("mails_per_s", round(max(ours), 1), "mails/s"),
        ("reference_mails_per_s", round(max(reference), 1), "mails/s"),
        ("idle_rss_mb", round(idle_rss_mb(), 1), "MB"),
    ]


if __name__ == "__main__":
    for name, value, unit in run():
        print(name, value, unit)
