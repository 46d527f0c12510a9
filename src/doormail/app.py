"""Wires the parts into a running service: storage, settings, accounts, certificates, the users
list, the camera, the pipeline and the delivery worker, each built once and handed exactly what
it uses. Nothing here decides or delivers; only the entry points (web, cli) read the Service."""

from __future__ import annotations

import os
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
from doormail.metrics import Metrics
from doormail.outbox import FINISHED, Admin, Queue
from doormail.pipeline.commit import Committer
from doormail.pipeline.intake import Intake
from doormail.store import datafolder, open_engine
from doormail.store.engine import sqlite_url
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
    worker: DeliveryWorker
    intake: Intake
    smtp_tests: SmtpTests
    retention: Retention
    runners: tuple[Runner, ...]


def build_service(paths: Paths, *, first_start_apart: bool = False) -> Service:
    """Open the database, do the first start's work when it is due (in a child process when
    `first_start_apart`, as a long-running service does) and build the service's parts."""
    datafolder.make_private(paths.data_dir)
    engine = open_engine(paths.database_url)
    if not firststart.is_done(engine, paths.data_dir):
        if first_start_apart:
            firststart.prepare_apart(paths.data_dir, paths.database_url)
        else:
            firststart.prepare(engine, paths.data_dir)
    settings = SettingsStore(engine)
    certificates = Certificates(engine, paths.data_dir)
    users = UserStore(engine)
    camera = CameraService(settings.load)
    metrics = Metrics()
    queue = Queue(engine, metrics=metrics)
    outbox = Admin(engine)
    metrics.watch_outbox(outbox.counts)
    worker = DeliveryWorker(queue, lambda: settings.load().smtp, certificates.tls_context)
    committer = Committer(engine, queue, observe_lock=metrics.commit_lock_seconds.observe)
    intake = Intake(
        load_settings=settings.load,
        users=users.reader,
        camera=camera,
        committer=committer,
        on_queued=worker.notify,
        on_event=lambda kind: metrics.events_received.labels(type=kind).inc(),
    )
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
        worker=worker,
        intake=intake,
        smtp_tests=SmtpTests(settings.load, certificates.tls_context, camera),
        retention=retention,
        runners=(worker.run, camera.run, retention.run),
    )
