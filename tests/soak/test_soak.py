"""Never lost, under fire: a door station posts events at a steady rate to a real `doormail serve`
that is SIGKILLed and started again every few seconds, while its SMTP server (a real one, in a
process of its own, recording each mail it accepts) is stopped for a while in the middle — and,
in a second run, answers 421 or 451 at random to a fifth of the commands. Every acknowledged event
must arrive as its mail once the server is back; a mail may arrive twice only when it was in
flight at a kill (or at the server's stop), at most one per interruption, and those are counted.

`make test` runs a short form of both runs at once (under a minute); `make soak`
(DOORMAIL_SOAK=full) runs 10,000 events each with a one-minute outage and prints the figures as
`name value` lines: events, lost, duplicated, kills, outage_s."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningService, free_port, start_serve
from tests.soak.smtp_recorder import READY

pytestmark = [pytest.mark.soak, pytest.mark.integration]

FULL = os.environ.get("DOORMAIL_SOAK") == "full"
RECORDER = Path(__file__).with_name("smtp_recorder.py")
RECIPIENT = "resident@example.com"
# A mail sent again after an interruption was in flight then: its first copy arrived at most this
# long before the kill (or the server's stop) that cut the acknowledgement off.
IN_FLIGHT_S = 5.0
# Each mail's outcome is saved before the next mail's end of data goes out: an interruption
# (a kill, or the server's stop) can cut off the acknowledgement of one mail only.
MAILS_IN_FLIGHT = 1
# A killed process's leases run out after 30 s (the worker's lease); its mail is then sent again.
SETTLE_S = 45.0
SENDERS = 8


@dataclass(frozen=True)
class Plan:
    """One run: how many events at what rate, how often doormail is killed, when the SMTP
    server is down, what share of its commands fail, and how long the mail may take after the
    last event."""

    name: str
    events: int
    rate: float
    kill_every: tuple[float, float]
    kills_until: float  # share of the run after which doormail is left alone
    outage: tuple[float, float] | None = None  # (start, length) in seconds from the first event
    faults: float = 0.0
    drain_s: float = 60.0

    @property
    def seconds(self) -> float:
        return self.events / self.rate


if FULL:
    PLANS = [
        Plan("outage", 10_000, 40.0, (2.0, 6.0), 0.97, outage=(95.0, 60.0), drain_s=300.0),
        # A mail failing again and again waits up to its back-off (5 s doubling, 600 s at most).
        Plan("faults", 10_000, 40.0, (2.0, 6.0), 0.97, faults=0.2, drain_s=900.0),
    ]
else:
    PLANS = [
        Plan("outage", 300, 20.0, (1.0, 2.5), 0.7, outage=(3.0, 6.0), drain_s=45.0),
        Plan("faults", 300, 20.0, (1.0, 2.5), 0.7, faults=0.2, drain_s=45.0),
    ]


@dataclass
class Run:
    """What happened in one run."""

    plan: Plan
    folder: Path
    smtp_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    acknowledged: dict[str, float] = field(default_factory=dict)  # event id -> when
    interruptions: list[float] = field(default_factory=list)  # kills and server stops
    kills: int = 0
    outage_s: float = 0.0
    server_errors: list[str] = field(default_factory=list)
    service: RunningService | None = None
    recorder: subprocess.Popen[bytes] | None = None

    @property
    def record(self) -> Path:
        return self.folder / "received.txt"

    @property
    def log(self) -> Path:
        return self.folder / "serve.log"

    @property
    def data(self) -> Path:
        return self.folder / "data"


# -- the SMTP server ------------------------------------------------------------------------------


def start_recorder(run: Run) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            str(RECORDER),
            *("--port", str(run.smtp_port), "--record", str(run.record)),
            *("--faults", str(run.plan.faults), "--seed", str(run.smtp_port)),
        ],
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stdout.readline().decode().strip() == READY
    run.recorder = process


def stop_recorder(run: Run) -> None:
    if run.recorder is not None:
        run.recorder.kill()
        run.recorder.wait()
        run.recorder = None


def received(run: Run) -> tuple[list[tuple[float, str, str]], int]:
    """The mails the server accepted (time, Message-ID, event id) and how many faults it gave."""
    mails, faults = [], 0
    for line in run.record.read_text(encoding="utf-8").splitlines():
        if line.startswith("fault "):
            faults += 1
        elif line:
            at, message_id, event = line.split(" ")
            mails.append((float(at), message_id, event))
    return mails, faults


# -- doormail -------------------------------------------------------------------------------------


def start_doormail(run: Run) -> None:
    run.service = start_serve(run.data, run.http_port, output=run.log)


def configure(run: Run) -> str:
    """Sending on, to the recorder; a mail per tamper event; a door station's token."""
    assert run.service is not None
    with run.service.client() as client:
        reply = client.patch(
            "/api/config",
            json={
                "smtp": {
                    "enabled": True,
                    "server": "127.0.0.1",
                    "port": run.smtp_port,
                    "security": "none",
                    "from": "door@example.org",
                },
                "email_on_event": {"to": RECIPIENT, "tamper": {"enabled": True}},
            },
        )
        assert reply.status_code == 200, reply.text
    made = subprocess.run(
        [sys.executable, "-m", "doormail", "token", "create", "door", "--data", str(run.data)],
        capture_output=True,
        text=True,
        check=True,
    )
    return made.stdout.strip()


def kill_doormail(run: Run) -> None:
    assert run.service is not None
    run.service.process.send_signal(signal.SIGKILL)
    run.service.process.wait()
    run.interruptions.append(time.time())
    run.kills += 1


# -- the door station -----------------------------------------------------------------------------


async def door_station(run: Run, token: str) -> None:
    """Posts the plan's events at its rate; each is posted again, with the same id, until it is
    acknowledged (202), as a door station does when doormail does not answer."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    async def produce() -> None:
        started = time.monotonic()
        for number in range(run.plan.events):
            await asyncio.sleep(max(0.0, started + number / run.plan.rate - time.monotonic()))
            await queue.put(f"soak-{run.plan.name}-{number}")
        for _ in range(SENDERS):
            await queue.put(None)

    async def send(client: httpx.AsyncClient) -> None:
        while (event_id := await queue.get()) is not None:
            await post_until_acknowledged(client, event_id)

    async def post_until_acknowledged(client: httpx.AsyncClient, event_id: str) -> None:
        body = {"type": "tamper.activated", "id": event_id}
        while True:
            try:
                reply = await client.post("/api/events", json=body)
            except httpx.HTTPError:
                await asyncio.sleep(0.1)  # killed, or starting again
                continue
            if reply.status_code == 202:
                result = reply.json()
                assert result["event_id"] == event_id and len(result["emails"]) == 1, result
                run.acknowledged[event_id] = time.time()
                return
            # Anything else is a failure of the test: noted, and the event is not acknowledged.
            run.server_errors.append(f"{event_id}: {reply.status_code} {reply.text[:200]}")
            await asyncio.sleep(0.1)

    headers = {"Authorization": f"Bearer {token}"}
    url = f"http://127.0.0.1:{run.http_port}"
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        await asyncio.gather(produce(), *(send(client) for _ in range(SENDERS)))


async def killer(run: Run, done: asyncio.Event) -> None:
    """SIGKILL doormail every few seconds and start it again, until the plan says stop."""
    rng = random.Random(run.http_port)
    stop_at = time.monotonic() + run.plan.seconds * run.plan.kills_until
    while not done.is_set() and time.monotonic() < stop_at:
        await asyncio.sleep(rng.uniform(*run.plan.kill_every))
        if done.is_set() or time.monotonic() >= stop_at:
            return
        kill_doormail(run)
        await asyncio.to_thread(start_doormail, run)


async def outage(run: Run) -> None:
    """The SMTP server stopped for the plan's outage, then started again."""
    if run.plan.outage is None:
        return
    start, length = run.plan.outage
    await asyncio.sleep(start)
    stop_recorder(run)
    run.interruptions.append(time.time())
    stopped = time.monotonic()
    await asyncio.sleep(length)
    start_recorder(run)
    run.outage_s += time.monotonic() - stopped


async def soak(run: Run) -> None:
    start_recorder(run)
    start_doormail(run)
    token = configure(run)
    done = asyncio.Event()
    kills = asyncio.create_task(killer(run, done))
    server = asyncio.create_task(outage(run))
    await door_station(run, token)
    done.set()
    await asyncio.gather(kills, server)
    if run.plan.faults and run.recorder is not None:
        run.recorder.send_signal(signal.SIGUSR1)  # the server is well again
    await drain(run)
    await settle(run)


async def drain(run: Run) -> None:
    """Wait until every acknowledged event's mail has arrived, or the plan's time is up."""
    deadline = time.monotonic() + run.plan.drain_s
    while time.monotonic() < deadline:
        arrived = {event for _at, _mid, event in received(run)[0]}
        if arrived >= run.acknowledged.keys():
            return
        await asyncio.sleep(0.5)


async def settle(run: Run) -> None:
    """Wait until nothing is left to send. A mail the server took just before a kill, its
    outcome not yet saved, stays `sending` until its lease runs out; then it is sent again."""
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        if not any((await asyncio.to_thread(outbox_states, run)).values()):
            return
        await asyncio.sleep(0.5)


# -- the verdict ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    events: int
    lost: int
    duplicated: int
    kills: int
    outage_s: float
    faults: int
    unexplained: list[str]


def judge(run: Run) -> Figures:
    mails, faults = received(run)
    arrived = {event for _at, _mid, event in mails}
    lost = run.acknowledged.keys() - arrived
    copies = Counter(message_id for _at, message_id, _event in mails)
    first: dict[str, float] = {}
    for at, message_id, _event in mails:
        first.setdefault(message_id, at)
    unexplained = []
    for message_id, count in copies.items():
        if count > 1 and not any(
            0 <= cut - first[message_id] <= IN_FLIGHT_S for cut in run.interruptions
        ):
            unexplained.append(f"{message_id} arrived {count} times, not in flight at a kill")
    # One mail per event, the same Message-ID on every copy.
    messages: dict[str, set[str]] = {}
    for _at, message_id, event in mails:
        messages.setdefault(event, set()).add(message_id)
    unexplained += [f"event {e} came as {len(m)} mails" for e, m in messages.items() if len(m) > 1]
    return Figures(
        events=len(run.acknowledged),
        lost=len(lost),
        duplicated=sum(count - 1 for count in copies.values()),
        kills=run.kills,
        outage_s=run.outage_s,
        faults=faults,
        unexplained=unexplained + sorted(lost)[:20],
    )


def outbox_states(run: Run) -> dict[str, int]:
    """How many outbox entries doormail still has in each unfinished state."""
    assert run.service is not None
    with run.service.client() as client:
        found = {}
        for status in ("queued", "sending", "failed", "expired"):
            page = client.get("/api/outbox", params={"status": status, "limit": 100}).json()
            found[status] = len(page["items"])
        return found


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[list[Run]]:
    made = [Run(plan, tmp_path / plan.name) for plan in PLANS]
    yield made
    for run in made:
        stop_recorder(run)
        if run.service is not None:
            run.service.stop()


def test_no_acknowledged_event_is_lost_while_doormail_is_killed_and_the_server_fails(
    runs: list[Run], capsys: pytest.CaptureFixture[str]
) -> None:
    for run in runs:
        run.folder.mkdir(parents=True)
    started = time.monotonic()

    async def both() -> None:
        await asyncio.gather(*(soak(run) for run in runs))

    asyncio.run(both())
    took = time.monotonic() - started
    figures = [judge(run) for run in runs]
    with capsys.disabled():
        print()
        for name in ("events", "lost", "duplicated", "kills"):
            print(f"{name} {sum(getattr(f, name) for f in figures)}")
        print(f"outage_s {sum(f.outage_s for f in figures):.0f}")
        print(f"smtp_faults {sum(f.faults for f in figures)}")
        print(f"soak_seconds {took:.0f}")
    for run, result in zip(runs, figures, strict=True):
        where = f"{run.plan.name} (serve log: {run.log})"
        assert not run.server_errors, f"{where}: {run.server_errors[:5]}"
        assert result.events == run.plan.events, where
        assert result.lost == 0 and not result.unexplained, f"{where}: {result.unexplained}"
        bound = len(run.interruptions) * MAILS_IN_FLIGHT
        assert result.duplicated <= bound, f"{where}: {result.duplicated} duplicates > {bound}"
        assert result.kills >= 2, where
        assert outbox_states(run) == dict.fromkeys(("queued", "sending", "failed", "expired"), 0)
    if any(run.plan.faults for run in runs):
        assert sum(f.faults for f in figures) > 0
