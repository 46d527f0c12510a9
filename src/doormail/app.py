"""Wires the stages into a running service: storage, settings, accounts, certificates, the
pipeline and the delivery worker. Nothing here decides or delivers; it only connects."""

from __future__ import annotations

import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from doormail import datafolder, firststart
from doormail.accounts import Accounts
from doormail.camera.service import CameraService
from doormail.certificates import Certificates
from doormail.delivery.apply_test import SmtpTests
from doormail.delivery.worker import DeliveryWorker
from doormail.intake import Intake
from doormail.metrics import Metrics
from doormail.outbox import Admin, Queue
from doormail.store import open_engine
from doormail.store.engine import sqlite_url
from doormail.store.settings_store import SettingsStore
from doormail.users.store import UserStore

DEFAULT_DATA = "./doormail-data"
DEFAULT_LISTEN = "127.0.0.1:8480"


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


@dataclass
class Service:
    """Everything a running doormail holds, built once from its paths and handed around."""

    paths: Paths
    engine: Engine
    settings: SettingsStore
    accounts: Accounts
    camera: CameraService
    certificates: Certificates
    users: UserStore
    metrics: Metrics
    outbox: Admin
    queue: Queue
    worker: DeliveryWorker
    smtp_tests: SmtpTests = field(init=False)  # Apply & Test runs, built from the parts above
    intake: Intake = field(init=False)  # events in, mails queued: built from the parts above
    # Long-running coroutines (the delivery worker, camera capture, event sources) that the web
    # application starts with itself and cancels when it stops.
    runners: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)


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
    metrics = Metrics()
    outbox = Admin(engine)
    queue = Queue(engine, metrics=metrics)
    metrics.watch_outbox(outbox.counts)
    worker = DeliveryWorker(queue, lambda: settings.load().smtp, certificates.tls_context)
    service = Service(
        paths=paths,
        engine=engine,
        settings=settings,
        accounts=Accounts(engine),
        camera=CameraService(settings.load),
        certificates=certificates,
        users=UserStore(engine),
        metrics=metrics,
        outbox=outbox,
        queue=queue,
        worker=worker,
    )
    service.smtp_tests = SmtpTests(settings, certificates.tls_context, service.camera)
    service.intake = Intake(service)
    service.runners.append(worker.run)
    service.runners.append(service.camera.run)
    return service
