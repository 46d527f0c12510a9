"""`event_to_accept_p50_ms` / `event_to_accept_p99_ms`: from `POST /api/events` (a missed call,
no snapshots) to the 250 reply of an SMTP server on loopback, at a steady 50 events/s against a
real `doormail serve` with 10,000 users. The SMTP server (aiosmtpd, in a process of its own)
records when each message's DATA is accepted; `event_reply_p50_ms` is the HTTP reply alone, and `event_smtp_connections` how
many connections the mails took (the worker keeps one open between rounds).
`event_write_lock_p99_ms`: how long an event's write transaction held the database's write lock
in that run (the service's doormail_commit_lock_seconds). `event_to_accept_snap3_p99_ms`: the
same leg with 3 snapshots at 640x480 from an MJPEG camera of 1280x720 pictures, spread over the
call's last 3 seconds of ringing (`event_reply_snap3_*`: its HTTP replies, which come once the
mails are committed, before they are sent)."""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench._histogram import quantile
from bench._mjpeg import MjpegCamera
from bench.camera import camera_picture

RATE = 50.0  # events per second
EVENTS = 500
USERS = 10_000
PASSWORD = "bench-admin-password"
RINGING = 3.0  # seconds a call of the snapshot leg rang
SNAPSHOTS = {"attach": True, "count": 3, "resolution": "640x480"}


@contextmanager
def arrivals_server() -> Iterator[tuple[int, Path]]:
    """The timestamping SMTP server (bench._arrivals) in a process of its own: its port and the
    file it notes arrivals in."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="doormail-bench-smtp-") as folder:
        noted = Path(folder) / "arrivals"
        noted.touch()
        command = [sys.executable, "-m", "bench._arrivals", str(port), str(noted)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the SMTP server did not start") from None
                    time.sleep(0.1)
            yield port, noted
        finally:
            process.terminate()
            process.wait(10)


def read_arrivals(noted: Path) -> tuple[dict[str, float], int]:
    """When each event's message was accepted, and how many connections there were."""
    at: dict[str, float] = {}
    connections = 0
    for line in noted.read_text(encoding="utf-8").splitlines():
        if line == "ehlo":
            connections += 1
        elif "\t" in line:
            event_id, accepted = line.split("\t")
            at[event_id] = float(accepted)
    return at, connections


@dataclass(frozen=True)
class Leg:
    """What one run measured: event to 250 and event to reply (ms), the SMTP connections, and
    the service's metrics at the end."""

    latencies: list[float]
    replies: list[float]
    connections: int
    metrics: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(data: Path) -> Iterator[tuple[str, int]]:
    """A `doormail serve` on a free port: its base URL and process id while the block runs."""
    port = free_port()
    env = {**os.environ, "DOORMAIL_ADMIN_PASSWORD": PASSWORD}
    command = [sys.executable, "-m", "doormail", "serve", "--data", str(data)]
    command += ["--listen", f"127.0.0.1:{port}"]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("doormail serve did not start") from None
                time.sleep(0.1)
        yield base, process.pid
    finally:
        process.terminate()
        process.wait(30)


def prepare(client: httpx.Client, smtp_port: int, extra: dict[str, Any]) -> None:
    config: dict[str, Any] = {
        "smtp": {
            "enabled": True,
            "server": "127.0.0.1",
            "port": smtp_port,
            "security": "none",
            "from": "door@example.org",
        },
        "email_on_call": {"send": "missed", "default_to": "desk@example.com"},
    }
    for section, values in extra.items():
        config[section] = {**config.get(section, {}), **values}
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


def wait_for_pictures(client: httpx.Client) -> None:
    """Until the camera has buffered more than a call's ringing."""
    deadline = time.monotonic() + 30
    while True:
        status = client.get("/api/camera/status").json()
        if status["state"] == "receiving" and status["frames"] > (RINGING + 1) * 4:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the camera did not deliver pictures: {status}")
        time.sleep(0.2)


async def steady(base: str, rang: float | None) -> tuple[dict[str, float], list[float]]:
    """Post EVENTS missed calls at RATE per second (which rang `rang` seconds when given);
    when each was posted, and reply times."""
    posted: dict[str, float] = {}
    replies: list[float] = []
    async with httpx.AsyncClient(base_url=base, auth=("admin", PASSWORD), timeout=30) as client:

        async def one(index: int) -> None:
            event_id = f"bench-{uuid.uuid4().hex}"
            event: dict[str, Any] = {"type": "call.ended", "id": event_id, "answered": False}
            event["called"] = str(10000 + (index * 7919) % USERS)
            posted[event_id] = time.time()
            if rang is not None:
                event["started_at"] = datetime.fromtimestamp(
                    posted[event_id] - rang, UTC
                ).isoformat()
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


def leg(extra: dict[str, Any], rang: float | None = None) -> Leg:
    """One run against a fresh `doormail serve` configured with `extra`."""
    with (
        arrivals_server() as (smtp_port, noted),
        tempfile.TemporaryDirectory(prefix="doormail-bench-") as folder,
        serving(Path(folder) / "data") as (base, _),
        httpx.Client(base_url=base, auth=("admin", PASSWORD), timeout=60) as client,
    ):
        prepare(client, smtp_port, extra)
        if "camera" in extra:
            wait_for_pictures(client)
        posted, replies = asyncio.run(steady(base, rang))
        deadline = time.monotonic() + 60
        arrived, connections = read_arrivals(noted)
        while len(arrived) < len(posted) and time.monotonic() < deadline:
            time.sleep(0.1)
            arrived, connections = read_arrivals(noted)
        metrics = client.get("/metrics").text
    latencies = [(arrived[e] - t) * 1000 for e, t in posted.items() if e in arrived]
    if len(latencies) < len(posted):
        raise RuntimeError(f"only {len(latencies)} of {len(posted)} mails arrived")
    return Leg(latencies, [r * 1000 for r in replies], connections, metrics)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run() -> list[tuple[str, float, str]]:
    plain = leg({})
    held = quantile(plain.metrics, "doormail_commit_lock_seconds", 0.99) * 1000
    camera = MjpegCamera([camera_picture(seed) for seed in range(8)]).start()
    try:
        extra = {"camera": {"source": "mjpeg", "url": camera.url}}
        snap3 = leg({**extra, "email_on_call": {"snapshots": SNAPSHOTS}}, rang=RINGING)
    finally:
        camera.stop()
    return [
        ("event_to_accept_p50_ms", round(statistics.median(plain.latencies), 1), "ms"),
        ("event_to_accept_p99_ms", round(percentile(plain.latencies, 0.99), 1), "ms"),
        ("event_reply_p50_ms", round(statistics.median(plain.replies), 1), "ms"),
        ("event_smtp_connections", plain.connections, "count"),
        ("event_write_lock_p99_ms", round(held, 2), "ms"),
        ("event_to_accept_snap3_p50_ms", round(statistics.median(snap3.latencies), 1), "ms"),
        ("event_to_accept_snap3_p99_ms", round(percentile(snap3.latencies, 0.99), 1), "ms"),
        ("event_reply_snap3_p50_ms", round(statistics.median(snap3.replies), 1), "ms"),
        ("event_reply_snap3_p99_ms", round(percentile(snap3.replies, 0.99), 1), "ms"),
    ]


if __name__ == "__main__":
    for name, value, unit in run():
        print(name, value, unit)
