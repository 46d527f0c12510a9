"""Shared fixtures: a service on a temporary data folder, an authenticated API client, the
SMTP lab's coordinates, a real `doormail serve` process for end-to-end tests, and a database
that is SQLite in one run of a test and PostgreSQL in the other."""

from __future__ import annotations

import base64
import email
import email.policy
import functools
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from doormail.app import Paths, Service, build_service
from doormail.camera import Pictures, SnapshotSource
from doormail.camera.service import CameraService
from doormail.settings import apply_patch
from doormail.store import metadata, open_engine, upgrade
from doormail.users.model import User
from doormail.web.app import create_app
from tests import spamassassin as spamassassin_scorer

ADMIN_PASSWORD = "test-admin-password"
POSTGRES_URL = os.environ.get(
    "DOORMAIL_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/postgres"
)


def require_service(what: str) -> None:
    """Skip (or, with DOORMAIL_REQUIRE_SERVICES=1, fail) a test whose server is absent."""
    message = f"{what} is not available"
    if os.environ.get("DOORMAIL_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " and DOORMAIL_REQUIRE_SERVICES=1")
    pytest.skip(message)


@pytest.fixture(scope="session")
def spamassassin() -> Callable[[bytes], spamassassin_scorer.Score]:
    """Scores a message's bytes with Debian's spamassassin, local tests only
    (tests/spamassassin.py)."""
    program = spamassassin_scorer.find()
    if program is None:
        require_service("spamassassin (Debian package spamassassin)")
        raise AssertionError("unreachable")  # require_service skips or fails
    return functools.partial(spamassassin_scorer.score, program=program)


def basic_auth(user: str, password: str) -> dict[str, str]:
    """The Authorization header of HTTP Basic authentication."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def log_in_with_the_form(browser: httpx.Client) -> httpx.Response:
    """Log in as admin through the login page, as a browser does (its CSRF token included);
    the reply is the 303 that sets the session cookie. Works with a TestClient too."""
    page = browser.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None, page.text[:200]
    form = {"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token.group(1)}
    reply = browser.post("/login", data=form, follow_redirects=False)
    assert reply.status_code == 303, reply.text[:200]
    return reply


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> int:
    """The first of `count` consecutive free ports (a process told only the first takes the rest)."""
    while True:
        first = free_port()
        if first + count < 65536 and all(_is_free(first + i) for i in range(1, count)):
            return first


def _is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def service(data_dir: Path, database: str | None) -> Iterator[Service]:
    """The whole service on a temporary data folder, its database SQLite in that folder in one
    run of a test and PostgreSQL in the other (see `database`)."""
    built = build_service(Paths.resolve(str(data_dir), database))
    built.accounts.ensure_admin(ADMIN_PASSWORD)
    try:
        yield built
    finally:
        # Its connections go back to the server, which other tests and people share.
        built.engine.dispose()


class RecordingCamera:
    """A camera that remembers what it was asked for and answers as `camera` does."""

    def __init__(self, camera: SnapshotSource) -> None:
        self._camera = camera
        self.asked: list[tuple[float, float, int, int, int]] = []

    async def snapshots(
        self, start: float, end: float, count: int, width: int, height: int
    ) -> Pictures:
        self.asked.append((start, end, count, width, height))
        return await self._camera.snapshots(start, end, count, width, height)


@pytest.fixture
def camera(service: Service, monkeypatch: pytest.MonkeyPatch) -> RecordingCamera:
    """The service's camera (here without a source: N/A images), remembering what the service
    asks of it."""
    recording = RecordingCamera(CameraService(service.settings.load))
    monkeypatch.setattr(service.camera, "snapshots", recording.snapshots)
    return recording


# Calls mailed when missed, accesses when denied, each with a Default To.
EVENTS_CONFIG: dict[str, Any] = {
    "device": {"name": "Front door"},
    "smtp": {"enabled": True, "server": "127.0.0.1", "from": "door@example.org"},
    "email_on_call": {"send": "missed", "default_to": "desk@example.com"},
    "email_on_access": {"send": "denied", "default_to": "security@example.com"},
}


@pytest.fixture
def configured(service: Service) -> Service:
    """The service with EVENTS_CONFIG saved and Alice (two addresses, number 101) listed."""
    service.settings.save(apply_patch(service.settings.load(), EVENTS_CONFIG))
    service.users.create(
        User(
            id="u-alice", name="Alice", email="alice@example.com, a@work.example", numbers=("101",)
        )
    )
    return service


@pytest.fixture
def api(service: Service) -> Iterator[TestClient]:
    """The HTTP API, logged in as admin (runs the app's lifespan, so its runners too)."""
    with TestClient(create_app(service), headers=basic_auth("admin", ADMIN_PASSWORD)) as client:
        yield client


@pytest.fixture
def anonymous(service: Service) -> Iterator[TestClient]:
    with TestClient(create_app(service)) as client:
        yield client


@dataclass(frozen=True)
class Lab:
    """The Postfix SMTP lab (../shared/lab): ports, credentials, CA and maildir."""

    host: str
    plain: int
    starttls: int
    tls: int
    sink: int
    user: str
    password: str
    ca: Path
    client_cert: Path
    client_key: Path
    maildir: Path
    log: Path

    def delivered(self) -> list[Path]:
        return sorted((self.maildir / "new").glob("*"))

    def mail_to(self, to: str, timeout: float = 5.0) -> EmailMessage:
        """The delivered copy addressed to `to`, waited for (other tests share the maildir, so
        it is matched by its Delivered-To address), parsed with the modern e-mail policy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for path in self.delivered():
                try:
                    data = path.read_bytes()
                except FileNotFoundError:
                    continue
                if to.encode() in data:
                    parsed = email.message_from_bytes(data, policy=email.policy.default)
                    if parsed["Delivered-To"] == to:
                        assert isinstance(parsed, EmailMessage)
                        return parsed
            time.sleep(0.05)
        raise AssertionError(f"no mail for {to} arrived in {self.maildir}")

    def clear(self) -> None:
        for path in self.delivered():
            path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def lab() -> Lab:
    env = os.environ
    if "SMTP_LAB_HOST" not in env:
        require_service('the SMTP lab (../shared/lab/smtp-lab start; eval "$(smtp-lab env)")')
    found = Lab(
        host=env["SMTP_LAB_HOST"],
        plain=int(env["SMTP_LAB_PORT_PLAIN"]),
        starttls=int(env["SMTP_LAB_PORT_STARTTLS"]),
        tls=int(env["SMTP_LAB_PORT_TLS"]),
        sink=int(env["SMTP_LAB_PORT_SINK"]),
        user=env["SMTP_LAB_USER"],
        password=env["SMTP_LAB_PASSWORD"],
        ca=Path(env["SMTP_LAB_CA"]),
        client_cert=Path(env["SMTP_LAB_CLIENT_CERT"]),
        client_key=Path(env["SMTP_LAB_CLIENT_KEY"]),
        maildir=Path(env["SMTP_LAB_MAILDIR"]),
        log=Path(env["SMTP_LAB_LOG"]),
    )
    try:
        socket.create_connection((found.host, found.plain), timeout=2).close()
    except OSError:
        require_service(f"the SMTP lab on {found.host}:{found.plain}")
    return found


@dataclass
class RunningService:
    """A real `doormail serve` process on a free port."""

    process: subprocess.Popen[bytes]
    url: str
    data_dir: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=("admin", ADMIN_PASSWORD), timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_serve(
    data_dir: Path,
    port: int | None = None,
    env: dict[str, str] | None = None,
    options: Sequence[str] = (),
    output: Path | None = None,
    cwd: Path | None = None,
) -> RunningService:
    """Start `doormail serve` in `cwd` (with more `options` when given; its output appended to
    `output` when given) and wait until /healthz answers (over HTTPS when an option asks for
    it). It sees no DOORMAIL_ variable of the shell the tests run in, only those of `env`."""
    port = port or free_port()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("DOORMAIL_")}
    process_env = {**inherited, "DOORMAIL_ADMIN_PASSWORD": ADMIN_PASSWORD, **(env or {})}
    sink = output.open("ab") if output is not None else None
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "doormail",
            "serve",
            "--data",
            str(data_dir),
            "--listen",
            f"127.0.0.1:{port}",
            *options,
        ],
        env=process_env,
        cwd=cwd,
        stdout=sink or subprocess.DEVNULL,
        stderr=subprocess.STDOUT if sink else subprocess.DEVNULL,
    )
    if sink is not None:
        sink.close()  # the child has its own copy
    scheme = "https" if {"--tls", "--tls-cert"} & set(options) else "http"
    url = f"{scheme}://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"doormail serve exited with {process.returncode}")
        try:
            # Only whether it answers: the tests check the certificate themselves.
            if httpx.get(f"{url}/healthz", timeout=1, verify=False).status_code == 200:
                return RunningService(process, url, data_dir)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("doormail serve did not become ready within 30 s")


@pytest.fixture
def running(tmp_path: Path) -> Iterator[RunningService]:
    served = start_serve(tmp_path / "served")
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture(scope="module")
def postgres_engine() -> Iterator[Engine]:
    """A database of its own on the PostgreSQL server, dropped afterwards."""
    name = f"doormail_test_{uuid.uuid4().hex[:12]}"
    admin = open_engine(POSTGRES_URL)
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception:  # no server, no rights: the same answer for the test
        admin.dispose()
        require_service(f"PostgreSQL at {POSTGRES_URL}")
    engine = open_engine(make_url(POSTGRES_URL).set(database=name).render_as_string(False))
    upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def emptied(engine: Engine) -> Engine:
    """`engine`'s database with every row deleted (the schema and its revision kept)."""
    with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())
    return engine


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> str | None:
    """The one parameter that runs every test of the store twice: None for SQLite in the data
    folder (the default), or the URL of an emptied PostgreSQL database that the test module's
    tests share (made and migrated once per module, dropped after it)."""
    if request.param == "sqlite":
        return None
    shared: Engine = request.getfixturevalue("postgres_engine")
    emptied(shared)
    return shared.url.render_as_string(hide_password=False)


@pytest.fixture
def installation(data_dir: Path, database: str | None) -> list[str]:
    """The command line's words for the installation `service` runs on: its data folder, and
    its PostgreSQL database in that run of a test."""
    return ["--data", str(data_dir)] + ([] if database is None else ["--database", database])


@pytest.fixture
def engine(database: str | None, tmp_path: Path) -> Iterator[Engine]:
    """An empty, migrated database: SQLite in a temporary folder, or PostgreSQL."""
    if database is None:
        built = open_engine(f"sqlite:///{tmp_path / 'doormail.sqlite3'}")
        upgrade(built)
        yield built
        built.dispose()
        return
    shared = open_engine(database)
    try:
        yield shared
    finally:
        shared.dispose()
