"""`event_to_accept_p50_ms` / `event_to_accept_p99_ms`: from `POST /api/events` (a missed call,
no snapshots) to the 250 reply of an SMTP server on loopback, at a steady 50 events/s against a
real `doormail serve` with 10,000 users. The SMTP server (aiosmtpd) records when each message's
DATA is accepted; `event_reply_p50_ms` is the HTTP reply alone, and `event_smtp_connections` how
many connections the mails took (the worker keeps one open between rounds)."""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller

RATE = 50.0  # events per second
EVENTS = 500
USERS = 10_000
PASSWORD = "bench-admin-password"


class Arrivals:
    """An aiosmtpd handler that notes when each event's message was accepted, and counts the
    connections (each greets with EHLO once)."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.lock = threading.Lock()
        self.connections = 0

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        self.connections += 1
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        accepted = time.time()
        headers = BytesHeaderParser().parsebytes(envelope.original_content or envelope.content)
        with self.lock:
            self.at[str(headers.get("X-Doormail-Event", ""))] = accepted
        return "250 2.0.0 Ok: queued"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(data: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DOORMAIL_ADMIN_PASSWORD": PASSWORD}
    command = [sys.executable, "-m", "doormail", "serve", "--data", str(data)]
    command += ["--listen", f"127.0.0.1:{port}"]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("doormail serve did not start")


def prepare(client: httpx.Client, smtp_port: int) -> None:
    config = {
        "smtp": {
            "enabled": True,
            "server": "127.0.0.1",
            "port": smtp_port,
            "security": "none",
            "from": "door@example.org",
        },
        "email_on_call": {"send": "missed", "default_to": "desk@example.com"},
    }
    client.patch("/api/config", json=config).raise_for_status()
    lines = ["id,name,email,numbers,cards,bluetooth,fingerprints"] + [
        f"u-{i:05d},Resident {i},resident{i}@example.com,{10000 + i},,," for i in range(USERS)
    ]
    reply = client.post(
        "/api/users/import",
        content="\n".join(lines).encode(),
        headers={"content-type": "text/csv"},
    )
    reply.raise_for_status()


async def steady(base: str) -> tuple[dict[str, float], list[float]]:
    """Post EVENTS missed calls at RATE per second; when each was posted, and reply times."""
    posted: dict[str, float] = {}
    replies: list[float] = []
    async with httpx.AsyncClient(base_url=base, auth=("admin", PASSWORD), timeout=30) as client:

        async def one(index: int) -> None:
            event_id = f"bench-{uuid.uuid4().hex}"
            event = {"type": "call.ended", "id": event_id, "answered": False}
            event["called"] = str(10000 + (index * 7919) % USERS)
            posted[event_id] = time.time()
            reply = await client.post("/api/events", json=event)
            replies.append(time.time() - posted[event_id])
            assert reply.status_code == 202, reply.text

        start = time.monotonic()
        tasks = []
        for index in range(EVENTS):
            await asyncio.sleep(max(0.0, start + index / RATE - time.monotonic()))
            tasks.append(asyncio.create_task(one(index)))
        await asyncio.gather(*tasks)
    return posted, replies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run() -> list[tuple[str, float, str]]:
    arrivals = Arrivals()
    controller = Controller(arrivals, hostname="127.0.0.1", port=free_port())
    controller.start()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="doormail-bench-") as folder:
        process = serve(Path(folder) / "data", port)
        try:
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, auth=("admin", PASSWORD), timeout=60) as client:
                prepare(client, controller.port)
            posted, replies = asyncio.run(steady(base))
            deadline = time.monotonic() + 30
            while len(arrivals.at) < len(posted) and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            process.terminate()
            process.wait(10)
            controller.stop()
    latencies = [(arrivals.at[e] - t) * 1000 for e, t in posted.items() if e in arrivals.at]
    if len(latencies) < len(posted):
        raise RuntimeError(f"only {len(latencies)} of {len(posted)} mails arrived")
    return [
        ("event_to_accept_p50_ms", round(statistics.median(latencies), 1), "ms"),
        ("event_to_accept_p99_ms", round(percentile(latencies, 0.99), 1), "ms"),
        ("event_reply_p50_ms", round(statistics.median(replies) * 1000, 1), "ms"),
        ("event_smtp_connections", arrivals.connections, "count"),
    ]


if __name__ == "__main__":
    for name, value, unit in run():
        print(name, value, unit)
