"""Password guessing: the slow-down comes before Argon2 runs, counts failures per account and per
client address, is not undone by another credential, and at most two Argon2 checks run at once.
The throttle's clock and sleep are injected, so nothing here waits for its delays."""

from __future__ import annotations

import asyncio
import threading
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient

from doormail import accounts as accounts_module
from doormail.app import Service
from doormail.web.app import create_app
from doormail.web.security import FailureThrottle, PasswordGate, TooManyAttempts
from tests.conftest import ADMIN_PASSWORD, basic_auth
from tests.ui.test_session import csrf_of

ADDRESS = "203.0.113.5"


class Clock:
    """A monotonic clock that moves only when something sleeps on it; it notes each sleep."""

    def __init__(self, log: list[str]) -> None:
        self.now = 1000.0
        self.log = log

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.log.append(f"wait {seconds:g}")
        self.now += seconds


class WatchedHasher:
    """The real Argon2 hasher, noting each check (a verify, or the hash that equals the cost
    for an unknown name) and how many of them ran at the same time."""

    def __init__(self, log: list[str], hold: float = 0.0) -> None:
        self._real = PasswordHasher()
        self._lock = threading.Lock()
        self.hold = hold
        self.log = log
        self.running = 0
        self.most_at_once = 0

    def _run(self, what: str, work: Any) -> Any:
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.log.append(what)
        try:
            time.sleep(self.hold)
            return work()
        finally:
            with self._lock:
                self.running -= 1

    def verify(self, hashed: str, password: str) -> Any:
        return self._run("verify", lambda: self._real.verify(hashed, password))

    def hash(self, password: str) -> str:
        return str(self._run("hash", lambda: self._real.hash(password)))


@pytest.fixture
def log() -> list[str]:
    return []


@pytest.fixture
def clock(log: list[str]) -> Clock:
    return Clock(log)


@pytest.fixture
def hasher(log: list[str], monkeypatch: pytest.MonkeyPatch) -> WatchedHasher:
    watched = WatchedHasher(log)
    monkeypatch.setattr(accounts_module, "_hasher", watched)
    return watched


@pytest.fixture
def app(service: Service, clock: Clock, hasher: WatchedHasher) -> FastAPI:
    built = create_app(service)
    built.state.passwords = PasswordGate(
        service.accounts, FailureThrottle(clock=clock), sleep=clock.sleep
    )
    return built


@pytest.fixture
async def client(app: FastAPI) -> Any:
    transport = httpx.ASGITransport(app=app, client=(ADDRESS, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://doormail") as client:
        yield client


async def guess(client: httpx.AsyncClient, password: str, user: str = "admin") -> int:
    reply = await client.get("/api/config", headers=basic_auth(user, password))
    return reply.status_code


async def test_the_slow_down_comes_before_the_password_is_checked(
    client: httpx.AsyncClient, log: list[str]
) -> None:
    for attempt in range(5):
        assert await guess(client, f"wrong-{attempt}") == 401
    assert log == ["verify", "verify", "verify", "wait 0.25", "verify", "wait 0.5", "verify"]


async def test_a_valid_token_does_not_reset_the_count(
    client: httpx.AsyncClient, service: Service, log: list[str]
) -> None:
    token = service.accounts.create_token("door-1", scope="admin")
    for attempt in range(4):
        assert await guess(client, f"wrong-{attempt}") == 401
    ok = await client.get("/api/config", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    assert await guess(client, "wrong-again") == 401
    assert [line for line in log if line.startswith("wait")] == ["wait 0.25", "wait 0.5"]


async def test_wrong_user_names_are_counted_at_their_address(
    client: httpx.AsyncClient, log: list[str]
) -> None:
    for attempt in range(5):
        assert await guess(client, "wrong", user=f"user{attempt}") == 401
    # Unknown names cost an Argon2 hash like a real check (no enumeration by timing).
    assert log == ["hash", "hash", "hash", "wait 0.25", "hash", "wait 0.5", "hash"]


async def test_a_password_verified_before_passes_without_argon2_or_delay(
    client: httpx.AsyncClient, log: list[str]
) -> None:
    assert await guess(client, ADMIN_PASSWORD) == 200
    for attempt in range(6):
        await guess(client, f"wrong-{attempt}", user=f"user{attempt}")
    log.clear()
    for _ in range(3):
        assert await guess(client, ADMIN_PASSWORD) == 200
    assert log == []


async def test_only_two_password_checks_run_at_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    service: Service,
    hasher: WatchedHasher,
    clock: Clock,
    log: list[str],
) -> None:
    hasher.hold = 0.05
    # Waiting long enough for a slot that none is refused on a busy machine.
    app.state.passwords = PasswordGate(
        service.accounts, FailureThrottle(clock=clock), sleep=clock.sleep, slot_wait=30
    )
    users = ["admin", "nobody"] * 4
    replies = await asyncio.gather(*(guess(client, "wrong", user) for user in users))
    assert replies == [401] * 8
    assert len([line for line in log if line in ("verify", "hash")]) == 8
    assert hasher.most_at_once == 2


async def test_checks_that_find_no_free_slot_soon_get_429(
    app: FastAPI, client: httpx.AsyncClient, service: Service, hasher: WatchedHasher, clock: Clock
) -> None:
    hasher.hold = 0.3
    app.state.passwords = PasswordGate(
        service.accounts, FailureThrottle(clock=clock), sleep=clock.sleep, slot_wait=0.05
    )
    replies = await asyncio.gather(
        *(client.get("/api/config", headers=basic_auth(f"u{n}", "wrong")) for n in range(5))
    )
    assert sorted(reply.status_code for reply in replies) == [401, 401, 429, 429, 429]
    busy = next(reply for reply in replies if reply.status_code == 429)
    assert busy.json()["error"]["code"] == "too_many_requests"
    assert int(busy.headers["retry-after"]) >= 1
    assert hasher.most_at_once == 2


# -- the throttle -----------------------------------------------------------------------------


def throttle_at(log: list[str]) -> tuple[FailureThrottle, Clock]:
    clock = Clock(log)
    return FailureThrottle(clock=clock), clock


def test_guesses_sent_at_once_from_one_address_are_spaced_out(log: list[str]) -> None:
    throttle, _clock = throttle_at(log)
    waits = [throttle.admit(ADDRESS, f"user{n}") for n in range(8)]
    # Each guess waits for the one before it: sending many at once gains nothing.
    assert waits == [0, 0, 0, 0.25, 0.75, 1.75, 3.75, 7.75]
    with pytest.raises(TooManyAttempts) as refused:
        throttle.admit(ADDRESS, "user9")
    assert refused.value.retry_after > 10


def test_an_account_guessed_from_many_addresses_is_slowed_down(log: list[str]) -> None:
    throttle, _clock = throttle_at(log)
    waits = [throttle.admit(f"198.51.100.{n}", "admin") for n in range(6)]
    assert waits == [0, 0, 0, 0.25, 0.5, 1]


def test_a_correct_password_forgets_only_its_own_failures_from_that_address(
    log: list[str],
) -> None:
    throttle, clock = throttle_at(log)
    for _ in range(3):
        throttle.admit(ADDRESS, "admin")
        throttle.admit(ADDRESS, "guest")
        throttle.admit("198.51.100.7", "admin")
    clock.now += 60
    throttle.succeeded(ADDRESS, "admin")
    # Still counted: "guest" at this address (3) and "admin" from elsewhere (3).
    assert throttle.admit(ADDRESS, "other") == 0.25
    assert throttle.admit("192.0.2.1", "admin") == 0.25


def test_a_wrong_token_counts_against_its_address_only(log: list[str]) -> None:
    throttle, _clock = throttle_at(log)
    for _ in range(3):
        throttle.admit(ADDRESS)
    assert throttle.admit(ADDRESS, "admin") == 0.25
    assert throttle.admit("192.0.2.1", "admin") == 0


def test_failures_are_forgotten_after_five_minutes(log: list[str]) -> None:
    throttle, clock = throttle_at(log)
    for _ in range(6):
        throttle.admit(ADDRESS, "admin")
    clock.now += 301
    assert throttle.admit(ADDRESS, "admin") == 0


def test_the_throttle_remembers_a_bounded_number_of_names_and_addresses(log: list[str]) -> None:
    throttle = FailureThrottle(clock=Clock(log), keys=100)
    tracemalloc.start()
    try:
        for n in range(1000):
            throttle.admit(f"10.0.{n // 256}.{n % 256}", f"user{n}" + "x" * 100_000)
        kept, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert throttle.size() <= 200
    assert kept < 1_000_000, "long user names are kept whole"


# -- the login page ---------------------------------------------------------------------------


@pytest.fixture
def browser(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


def test_the_login_page_says_when_to_try_again(browser: TestClient, app: FastAPI) -> None:
    gate: PasswordGate = app.state.passwords
    for n in range(8):
        gate.throttle.admit("testclient", f"user{n}")
    token = csrf_of(browser.get("/login").text)
    reply = browser.post(
        "/login", data={"csrf_token": token, "username": "admin", "password": ADMIN_PASSWORD}
    )
    assert reply.status_code == 429
    assert "Too many attempts" in reply.text
    assert int(reply.headers["retry-after"]) > 10
