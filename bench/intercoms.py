"""The 2N intercom source against emulated intercoms (`tests/intercom2n`, a process of its own)
and a real `doormail serve`, tamper events mailed to a timestamping SMTP server on loopback:

- `intercom_event_to_accept_p50_ms` / `_p99_ms`: from an event appearing in one intercom's log
  (no snapshots) to the SMTP server's 250, at a steady RATE events a second.
- `intercoms_followed`: how many intercoms one process follows at once (every one connected),
  `intercoms_rss_mb` its resident memory then, and `intercoms_event_to_accept_p99_ms` the same
  latency while it follows them all (events spread over random intercoms)."""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.event_latency import PASSWORD, arrivals_server, percentile, read_arrivals, serving
from tests.intercom2n.emulator import RemoteIntercom

RATE = 20.0
EVENTS = 300
FOLLOWED = 500
FOLLOWED_EVENTS = 200
USER, EMULATOR_PASSWORD = "api", "api-password"


@contextmanager
def emulated(count: int) -> Iterator[list[tuple[str, str]]]:
    """`count` emulated intercoms; (URL, serial) of each."""
    command = [sys.executable, "-m", "tests.intercom2n.emulator", "--count", str(count)]
    command += ["--user", USER, "--password", EMULATOR_PASSWORD, "--up-time", "1000"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    try:
        found = []
        for _ in range(count):
            url, serial = process.stdout.readline().decode().split()
            found.append((url, serial))
        yield found
    finally:
        process.terminate()
        process.wait(10)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def prepare(client: httpx.Client, smtp_port: int, intercoms: list[tuple[str, str]]) -> None:
    smtp = {
        "enabled": True,
        "server": "127.0.0.1",
        "port": smtp_port,
        "security": "none",
        "from": "door@example.org",
    }
    events = {"to": "desk@example.com", "tamper": {"enabled": True}}
    client.patch("/api/config", json={"smtp": smtp, "email_on_event": events}).raise_for_status()
    for index, (url, _serial) in enumerate(intercoms):
        source = {"kind": "2n", "url": url, "username": USER, "password": EMULATOR_PASSWORD}
        reply = client.post("/api/devices", json={"id": f"door-{index}", "source": source})
        reply.raise_for_status()


def wait_connected(client: httpx.Client, count: int, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    up = 0
    while time.monotonic() < deadline:
        metrics = client.get("/metrics").text
        up = sum(
            1
            for line in metrics.splitlines()
            if line.startswith("doormail_source_up{") and line.endswith(" 1.0")
        )
        if up >= count:
            return
        time.sleep(0.5)
    raise RuntimeError(f"only {up} of {count} intercoms connected")


def latencies(
    intercoms: list[tuple[str, str]], events: int, noted: Path, rng: random.Random
) -> list[float]:
    """Log `events` tamper events at RATE a second on intercoms chosen at random; from each
    appearing in the log to its mail's 250, in ms."""
    remotes = {url: RemoteIntercom(url) for url, _serial in intercoms}
    serials = dict(intercoms)
    logged: dict[tuple[str, int], float] = {}
    try:
        start = time.monotonic()
        for number in range(events):
            time.sleep(max(0.0, start + number / RATE - time.monotonic()))
            url = rng.choice(intercoms)[0]
            at = time.time()
            record = remotes[url].tamper()
            logged[(serials[url], int(str(record["id"])))] = at
    finally:
        for remote in remotes.values():
            remote.close()
    deadline = time.monotonic() + 60
    while True:
        arrived, _connections = read_arrivals(noted)
        found = {}
        for event_id, accepted in arrived.items():
            _prefix, serial, _boot, log_id = event_id.split(":")
            found[(serial, int(log_id))] = accepted
        if len(found.keys() & logged.keys()) >= len(logged) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    missing = len(logged) - len(found.keys() & logged.keys())
    if missing:
        raise RuntimeError(f"{missing} of {len(logged)} mails did not arrive")
    return [(found[key] - at) * 1000 for key, at in logged.items()]


def leg(count: int, events: int) -> tuple[list[float], float]:
    """Latencies and doormail's RSS (MB) while it follows `count` intercoms."""
    rng = random.Random(count)
    with (
        arrivals_server() as (smtp_port, noted),
        emulated(count) as intercoms,
        tempfile.TemporaryDirectory(prefix="doormail-bench-") as folder,
        serving(Path(folder) / "data") as (base, pid),
        httpx.Client(base_url=base, auth=("admin", PASSWORD), timeout=60) as client,
    ):
        prepare(client, smtp_port, intercoms)
        wait_connected(client, count)
        time.sleep(1.0)
        rss = rss_mb(pid)
        measured = latencies(intercoms, events, noted, rng)
    return measured, rss


def run() -> list[tuple[str, float, str]]:
    one, _rss = leg(1, EVENTS)
    many, rss = leg(FOLLOWED, FOLLOWED_EVENTS)
    return [
        ("intercom_event_to_accept_p50_ms", round(statistics.median(one), 1), "ms"),
        ("intercom_event_to_accept_p99_ms", round(percentile(one, 0.99), 1), "ms"),
        ("intercoms_followed", FOLLOWED, "count"),
        ("intercoms_rss_mb", round(rss, 1), "MB"),
        ("intercoms_event_to_accept_p99_ms", round(percentile(many, 0.99), 1), "ms"),
    ]


if __name__ == "__main__":
    for name, value, unit in run():
        print(name, value, unit)
