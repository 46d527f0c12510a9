"""Never twice, never skipped: three emulated 2N intercoms (a process of their own) log tamper
events at a steady rate while a real `doormail serve` follows them; midway the emulator process
is restarted (every intercom reboots: new logs, ids from 1) and later doormail is SIGKILLed and
started again (another process takes the leases over once they run out). Every event logged
after doormail's first subscription must arrive as exactly one mail (counted by Message-ID at
an SMTP server of its own), and none logged before it.

`make test` runs a short form (150 events); `make soak` (DOORMAIL_SOAK=full) runs 1,000 and
prints `name value` lines: intercom_events, intercom_mails, intercom_lost, intercom_twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import RunningService, free_port, free_ports, start_serve
from tests.intercom2n.emulator import RemoteIntercom
from tests.soak.smtp_recorder import READY

pytestmark = [pytest.mark.soak, pytest.mark.integration]

FULL = os.environ.get("DOORMAIL_SOAK") == "full"
EVENTS = 1000 if FULL else 150
RATE = 50.0  # events a second, over the three intercoms
INTERCOMS = 3
RECORDER = Path(__file__).with_name("smtp_recorder.py")
RECIPIENT = "resident@example.com"
USER, PASSWORD = "api", "api-password"
# A dead process's leases run out within 25 s; then its successor subscribes again.
DRAIN_S = 60.0


@dataclass(frozen=True)
class Logged:
    """One event the intercom logged: which intercom, its log id and its boot."""

    serial: str
    log_id: int
    boot: int


@dataclass
class Soak:
    folder: Path
    first_port: int = field(default_factory=lambda: free_ports(INTERCOMS))
    smtp_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    emulator: subprocess.Popen[bytes] | None = None
    recorder: subprocess.Popen[bytes] | None = None
    service: RunningService | None = None
    urls: list[str] = field(default_factory=list)

    @property
    def record(self) -> Path:
        return self.folder / "received.txt"

    def start_emulator(self) -> None:
        self.emulator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.intercom2n.emulator",
                *("--count", str(INTERCOMS), "--first-port", str(self.first_port)),
                *("--user", USER, "--password", PASSWORD, "--up-time", "1000"),
            ],
            stdout=subprocess.PIPE,
        )
        assert self.emulator.stdout is not None
        self.urls = [self.emulator.stdout.readline().decode().split()[0] for _ in range(3)]

    def stop_emulator(self) -> None:
        if self.emulator is not None:
            self.emulator.send_signal(signal.SIGTERM)
            self.emulator.wait(10)

    def start_recorder(self) -> None:
        self.recorder = subprocess.Popen(
            [
                sys.executable,
                str(RECORDER),
                "--port",
                str(self.smtp_port),
                "--record",
                str(self.record),
            ],
            stdout=subprocess.PIPE,
        )
        assert self.recorder.stdout is not None
        assert self.recorder.stdout.readline().decode().strip() == READY

    def start_doormail(self) -> None:
        self.service = start_serve(
            self.folder / "data", self.http_port, output=self.folder / "serve.log"
        )

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
        self.stop_emulator()
        if self.recorder is not None:
            self.recorder.kill()
            self.recorder.wait()


def configure(soak: Soak) -> None:
    assert soak.service is not None
    with soak.service.client() as client:
        smtp = {
            "enabled": True,
            "server": "127.0.0.1",
            "port": soak.smtp_port,
            "security": "none",
            "from": "door@example.org",
        }
        events = {"to": RECIPIENT, "tamper": {"enabled": True}}
        reply = client.patch("/api/config", json={"smtp": smtp, "email_on_event": events})
        assert reply.status_code == 200, reply.text


def add_devices(soak: Soak) -> None:
    assert soak.service is not None
    with soak.service.client() as client:
        for index, url in enumerate(soak.urls):
            source = {"kind": "2n", "url": url, "username": USER, "password": PASSWORD}
            device = {"id": f"door-{index + 1}", "source": source}
            assert client.post("/api/devices", json=device).status_code == 201


def wait_connected(soak: Soak, seconds: float = 30.0) -> None:
    assert soak.service is not None
    deadline = time.monotonic() + seconds
    with soak.service.client() as client:
        while time.monotonic() < deadline:
            states = [
                client.get(f"/api/devices/door-{i + 1}/status").json()["state"]
                for i in range(INTERCOMS)
            ]
            if states == ["connected"] * INTERCOMS:
                return
            time.sleep(0.1)
    raise AssertionError(f"the devices did not connect: {states}")


def tamper(url: str, serial: str) -> Logged:
    """A tamper event logged by the intercom at `url`, as it logged it."""
    with RemoteIntercom(url) as intercom:
        record = intercom.tamper()
    boot = int(str(record["utcTime"])) - int(str(record["upTime"]))
    return Logged(serial, int(str(record["id"])), boot)


def mails(soak: Soak) -> list[tuple[str, str]]:
    """(Message-ID, event id) of each mail the server accepted."""
    if not soak.record.exists():
        return []
    found = []
    for line in soak.record.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("fault "):
            _at, message_id, event = line.split(" ")
            found.append((message_id, event))
    return found


def matches(event_id: str, logged: Logged) -> bool:
    _prefix, serial, boot, log_id = event_id.split(":")
    return (
        serial == logged.serial
        and int(log_id) == logged.log_id
        and abs(int(boot) - logged.boot) <= 2
    )


def test_every_intercom_event_is_mailed_exactly_once(tmp_path: Path) -> None:
    soak = Soak(tmp_path)
    try:
        soak.start_recorder()
        soak.start_emulator()
        serials = {}
        for url in soak.urls:
            with RemoteIntercom(url) as intercom:
                serials[url] = str(intercom.state()["serialNumber"])
        soak.start_doormail()
        configure(soak)
        before = [tamper(url, serials[url]) for url in soak.urls]  # before the subscription
        add_devices(soak)
        wait_connected(soak)
        logged: list[Logged] = []
        started = time.monotonic()
        for number in range(EVENTS):
            time.sleep(max(0.0, started + number / RATE - time.monotonic()))
            if number == EVENTS * 3 // 10:
                soak.stop_emulator()
                soak.start_emulator()
            if number == EVENTS * 6 // 10:
                assert soak.service is not None
                soak.service.process.send_signal(signal.SIGKILL)
                soak.service.process.wait()
                soak.start_doormail()
            url = soak.urls[number % INTERCOMS]
            logged.append(tamper(url, serials[url]))
        deadline = time.monotonic() + DRAIN_S
        while len({m for m, _ in mails(soak)}) < EVENTS and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(1.0)  # a mail too many would come now
        received = mails(soak)
    finally:
        soak.stop()
    by_message = {message_id: event for message_id, event in received}
    per_event = Counter(by_message.values())
    lost = [e for e in logged if not any(matches(i, e) for i in per_event)]
    twice = [i for i, count in per_event.items() if count > 1]
    early = [i for i in per_event for b in before if matches(i, b)]
    strays = [i for i in per_event if not any(matches(i, e) for e in logged)]
    print(f"intercom_events {EVENTS}")
    print(f"intercom_mails {len(by_message)}")
    print(f"intercom_lost {len(lost)}")
    print(f"intercom_twice {len(twice)}")
    assert (lost, twice, early, strays) == ([], [], [], [])
    assert len(by_message) == EVENTS
