"""`events_per_s`: events taken through the pipeline (decide, prepare, commit to the outbox),
each committed durably (SQLite WAL, synchronous=FULL) and answered only after its own commit,
no SMTP; with 10,000 users in the list, and with 10 to show that the list's size does not slow
an event down. IN_FLIGHT door stations post at once, as many devices of a building do, so that
commits waiting together share a transaction. `events_write_lock_p99_ms`: how long an event's
transaction held the write lock meanwhile."""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._histogram import quantile
from doormail.app import Paths, Service, build_service
from doormail.events import parse_event
from doormail.settings import apply_patch
from doormail.users.model import User

EVENTS = 2000
IN_FLIGHT = 32
CONFIG: dict[str, Any] = {
    "smtp": {"enabled": True, "server": "127.0.0.1", "port": 9, "from": "door@example.org"},
    "email_on_call": {"send": "missed", "default_to": "desk@example.com"},
    "email_on_access": {"send": "all", "default_to": "security@example.com"},
}


def users(count: int) -> list[User]:
    return [
        User(
            id=f"u-{i:05d}",
            name=f"Resident {i}",
            email=f"resident{i}@example.com",
            numbers=(str(10000 + i),),
            cards=(f"00{i:08X}",),
        )
        for i in range(count)
    ]


def event(index: int, user_count: int, rng: random.Random) -> dict[str, Any]:
    """Alternately a missed call to a resident's number and a card access by a resident's card
    as a Wiegand reader shortens it."""
    i = rng.randrange(user_count)
    if index % 2:
        return {"type": "access", "auth_type": "card", "auth_id": f"{i:08X}"}
    return {"type": "call.ended", "called": str(10000 + i), "answered": False}


def service_with(user_count: int, folder: Path) -> Service:
    service = build_service(Paths.resolve(str(folder / "data")))
    service.settings.save(apply_patch(service.settings.load(), CONFIG))
    service.users.import_users(users(user_count))
    return service


async def measure(service: Service, user_count: int) -> float:
    rng = random.Random(7)
    for index in range(50):  # warm-up
        await service.intake.submit(parse_event(event(index, user_count, rng)))
    bodies = iter([event(index, user_count, rng) for index in range(EVENTS)])

    async def door_station() -> None:
        for body in bodies:
            accepted = await service.intake.submit(parse_event(body))
            assert accepted.emails, accepted

    started = time.perf_counter()
    await asyncio.gather(*(door_station() for _ in range(IN_FLIGHT)))
    return EVENTS / (time.perf_counter() - started)


def run() -> list[tuple[str, float, str]]:
    results = []
    for user_count, name in ((10_000, "events_per_s"), (10, "events_per_s_10_users")):
        with tempfile.TemporaryDirectory(prefix="doormail-bench-") as folder:
            service = service_with(user_count, Path(folder))
            rate = asyncio.run(measure(service, user_count))
            metrics = service.metrics.render().decode()
            service.engine.dispose()
        results.append((name, round(rate, 1), "events/s"))
        if user_count == 10_000:
            held = quantile(metrics, "doormail_commit_lock_seconds", 0.99) * 1000
            results.append(("events_write_lock_p99_ms", round(held, 2), "ms"))
    return results


if __name__ == "__main__":
    for name, value, unit in run():
        print(name, value, unit)
