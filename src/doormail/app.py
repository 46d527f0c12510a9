"""Wires the parts into a running service: storage, settings, accounts, certificates, the users
list, the camera, the pipeline and the delivery worker, each built once and handed exactly what
it uses. Nothing here decides or delivers; only the entry points (web, cli) read the Service."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from doormail import firststart
from doormail.accounts import Accounts
from doormail.applytest import SmtpTests
from doormail.camera.service import CameraService
from doormail.certificates import Certificates
from doormail.delivery.worker import DeliveryWorker
from doormail.devices.store import DeviceStore
from doormail.dkimkey import TxtLookup, lookup_txt
from doormail.eventlog import EventLog
from doormail.events import Access, Event
from doormail.metrics import Metrics
from doormail.outbox import FINISHED, Admin, Queue
from doormail.outbox.server import ServerWatch
from doormail.pipeline.commit import Committer
from doormail.pipeline.digest import Digests
from doormail.pipeline.intake import Intake
from doormail.sources.cameras import DeviceCameras
from doormail.sources.intercoms import Intercoms
from doormail.sources.mqtt import MqttSource
from doormail.store import datafolder, open_engine
from doormail.store.engine import sqlite_url
from doormail.store.leases import Leases, SourceStates
from doormail.store.retention import Retention
from doormail.store.settings_store import SettingsStore
from doormail.users.store import UserStore

DEFAULT_DATA = "./doormail-data"
DEFAULT_LISTEN = "127.0.0.1:8480"

# A long-running coroutine (the delivery worker, the camera's capture) that `serve` starts with
# the web application and cancels when it stops.
Runner = Callable[[], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class Paths:
    """Where the service keeps its files and which database it uses."""

    data_dir: Path
    database_url: str

    @classmethod
    def resolve(cls, data_dir: str | None = None, database_url: str | None = None) -> Paths:
        data = Path(data_dir or os.environ.get("DOORMAIL_DATA") or DEFAULT_DATA)
        url = database_url or os.environ.get("DOORMAIL_DATABASE_URL") or sqlite_url(data)
        return cls(data_dir=data, database_url=url)


@dataclass(frozen=True)
class Service:
    """Every part of a running doormail, built once from its paths; what the entry points use."""

    paths: Paths
    engine: Engine
    settings: SettingsStore
    accounts: Accounts
    certificates: Certificates
    users: UserStore
    camera: CameraService
    metrics: Metrics
    queue: Queue
    outbox: Admin
    server: ServerWatch
    worker: DeliveryWorker
    intake: Intake
    smtp_tests: SmtpTests
    digests: Digests
    devices: DeviceStore
    intercoms: Intercoms
    mqtt: MqttSource
    retention: Retention
    runners: tuple[Runner, ...]
    events: EventLog
    # How GET /api/dkim/check reads DNS (a test hands in its own zone).
    dkim_lookup: TxtLookup = lookup_txt


def build_service(
    paths: Paths, *, first_start_apart: bool = False, clock: Callable[[], float] = time.time
) -> Service:
    """Open the database, do the first start's work when it is due (in a child process when
    `first_start_apart`, as a long-running service does) and build the service's parts.
    `clock` is what the outbox and flood control take as now (a test's hours pass at once)."""
    datafolder.make_private(paths.data_dir)
    engine = open_engine(paths.database_url)
    if not firststart.is_done(engine, paths.data_dir):
        if first_start_apart:
            firststart.prepare_apart(paths.data_dir, paths.database_url)
        else:
            firststart.prepare(engine, paths.data_dir)
    server = ServerWatch(engine)
    settings = SettingsStore(engine, on_smtp_change=lambda: retry_now())
    certificates = Certificates(engine, paths.data_dir)
    users = UserStore(engine)
    camera = CameraService(settings.load)
    metrics = Metrics()
    queue = Queue(engine, metrics=metrics, clock=clock)
    outbox = Admin(engine)
    metrics.watch_outbox(outbox.counts)
    metrics.watch_server(server.read)
    worker = DeliveryWorker(
        queue, lambda: settings.load().smtp, certificates.tls_context, server=server
    )

    def retry_now() -> None:
        # New SMTP settings: queued mail is due at once, an unreachable server probed now.
        server.retry_now()
        worker.notify()

    committer = Committer(
        engine, queue, observe_lock=metrics.commit_lock_seconds.observe, clock=clock
    )
    digests = Digests(engine, queue, settings.load, worker.notify, clock=clock)
    devices = DeviceStore(engine)
    leases = Leases(engine, f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
    submit = _Late()
    intercoms = Intercoms(
        devices=devices.all,
        leases=leases,
        states=SourceStates(engine),
        submit=submit,
        knows=lambda event: _knows(users, event),
        metrics=metrics,
    )
    cameras = DeviceCameras(settings.load, intercoms, devices.all)
    intake = Intake(
        load_settings=settings.load,
        users=users.reader,
        camera=camera,
        committer=committer,
        on_queued=worker.notify,
        on_event=lambda kind: metrics.events_received.labels(type=kind).inc(),
        devices=devices.all,
        camera_for=cameras,
    )
    submit.to = intake.submit
    mqtt = MqttSource(load_settings=settings.load, submit=submit, leases=leases, metrics=metrics)
    retention = Retention(engine, lambda: settings.load().storage, FINISHED)
    return Service(
        paths=paths,
        engine=engine,
        settings=settings,
        accounts=Accounts(engine),
        certificates=certificates,
        users=users,
        camera=camera,
        metrics=metrics,
        queue=queue,
        outbox=outbox,
        server=server,
        worker=worker,
        intake=intake,
        smtp_tests=SmtpTests(settings.load, certificates.tls_context, camera),
        digests=digests,
        events=EventLog(engine),
        devices=devices,
        intercoms=intercoms,
        mqtt=mqtt,
        retention=retention,
        runners=(
            worker.run,
            camera.run,
            digests.run,
            intercoms.run,
            mqtt.run,
            cameras.run,
            retention.run,
        ),
    )


class _Late:
    """The intake's submit, for the sources built before the intake (it uses their cameras)."""

    to: Callable[[Event], Coroutine[Any, Any, object]] | None = None

    async def __call__(self, event: Event) -> object:
        assert self.to is not None
        return await self.to(event)


def _knows(users: UserStore, event: Event) -> bool:
    """Whether the users list knows the identifier of an access (else the intercom names it)."""
    if not isinstance(event, Access):
        return True
    finders = {"card": "by_card", "bluetooth": "by_bluetooth", "fingerprint": "by_fingerprint"}
    with users.reader() as lookup:
        return getattr(lookup, finders[event.auth_type])(event.auth_id) is not None
