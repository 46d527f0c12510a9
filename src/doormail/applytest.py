"""Apply & Test (SPEC section 8): a test e-mail with one snapshot, built as every mail is
(`pipeline.prepare`), sent straight over an SMTP session (not through the outbox) with the saved
settings, or unsaved `smtp` overrides, while each stage is logged live. Runs are kept in memory, the newest few only, and at most a few run
at once: each holds a connection until it ends. Overrides that send the login somewhere else
without giving it again do not get the stored secrets: the AUTH stage says so (SPEC section 1)."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from doormail import dkimkey, placeholders
from doormail import settings as model
from doormail.camera import SnapshotSource
from doormail.certificates import CertificateError
from doormail.config_warnings import ConfigWarning, config_warnings
from doormail.delivery.errors import DeliveryError, PermanentDeliveryError
from doormail.delivery.session import SmtpSession
from doormail.destinations import Unbound
from doormail.pipeline import snapshots
from doormail.pipeline.prepare import prepare_message
from doormail.placeholders import Context, Kind
from doormail.rules import Mail

__all__ = ["LogLine", "SmtpTests", "TestRun", "TooManyRuns"]

log = logging.getLogger("doormail.apply_test")

State = Literal["running", "sent", "failed"]
SNAPSHOT_WIDTH, SNAPSHOT_HEIGHT = 640, 480
KIND: Kind = "test"
SUBJECT = "doormail test e-mail from $DeviceName$"
BODY = (
    "<p>This is a test e-mail from <b>$DeviceName$</b>, sent by Apply &amp; Test.</p>\n"
    "<p>The SMTP settings work: the server accepted this message. The attached snapshot"
    " shows what the camera saw when it was sent.</p>"
)
KEEP_RUNS = 50
MAX_RUNNING = 3
TIMEOUT = 20.0


class TooManyRuns(Exception):
    """Apply & Test asked for while the most runs allowed at once are still going."""

    def __init__(self, running: int) -> None:
        super().__init__(
            f"{running} Apply & Test runs are still going, the most at once;"
            " try again when one of them has finished"
        )


TlsContexts = Callable[[model.Smtp], ssl.SSLContext]


@dataclass(frozen=True)
class LogLine:
    """One line of a run's log: when, which stage, what happened."""

    at: float
    stage: str
    message: str

    def public(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TestRun:
    """One Apply & Test: its log grows while it runs; `state` ends as sent or failed."""

    __test__ = False  # not a pytest class, despite the name

    id: str
    to: str
    settings: model.Settings
    tls_context: ssl.SSLContext
    # Stored secrets left out because the overrides changed where they would go.
    withheld: list[Unbound] = field(default_factory=list)
    state: State = "running"
    log: list[LogLine] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, stage: str, message: str) -> None:
        self.log.append(LogLine(time.time(), stage, message))
        self._notify()

    def finish(self, state: State) -> None:
        self.state = state
        self._notify()

    @property
    def warnings(self) -> list[ConfigWarning]:
        """Beside the result: what in the settings tested will keep event mail from going out,
        which a test e-mail that went out does not show (SPEC section 2)."""
        return config_warnings(self.settings)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "log": [line.public() for line in self.log],
            "warnings": [warning.reply() for warning in self.warnings],
        }

    async def follow(self) -> AsyncIterator[LogLine]:
        """Every line, those already written and then each as it comes, until the run ends."""
        shown = 0
        while True:
            wake = self._wake
            while shown < len(self.log):
                yield self.log[shown]
                shown += 1
            if self.state != "running":
                return
            await wake.wait()

    def _notify(self) -> None:
        # Followers hold the event they wait on; a fresh one is made for the next change.
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()


class SmtpTests:
    """The Apply & Test runs of one service."""

    def __init__(
        self,
        load_settings: Callable[[], model.Settings],
        tls_contexts: TlsContexts,
        camera: SnapshotSource,
        *,
        keep: int = KEEP_RUNS,
        timeout: float = TIMEOUT,
        max_running: int = MAX_RUNNING,
    ) -> None:
        self._load_settings = load_settings
        self._tls_contexts = tls_contexts
        self._camera = camera
        self._keep = keep
        self._timeout = timeout
        self._runs: OrderedDict[str, TestRun] = OrderedDict()
        self._max_running = max_running
        self._running: set[str] = set()  # the ids of runs started and not finished

    def prepare(self, to: str, smtp: Mapping[str, Any] | None = None) -> TestRun:
        """A run for `to` with the saved settings and `smtp` overrides merged in; SettingsError
        names the first bad field (`to`, `smtp.port`, ...)."""
        to = to.strip() if isinstance(to, str) else ""
        if not model.is_address(to):
            raise model.SettingsError("to", "must be one e-mail address, e.g. alice@example.com")
        if smtp is not None and not isinstance(smtp, Mapping):
            raise model.SettingsError("smtp", "must be a JSON object")
        current = self._load_settings()
        settings, withheld = (
            model.apply_trial(current, {"smtp": dict(smtp)}) if smtp else (current, [])
        )
        missing = [
            (f"smtp.{name}", "is required to send the test e-mail")
            for name, value in (("server", settings.smtp.server), ("from", settings.smtp.from_))
            if not value
        ]
        if missing:
            raise model.SettingsError.of(missing)
        try:
            context = self._tls_contexts(settings.smtp)
        except CertificateError as error:
            raise model.SettingsError(error.field, error.message) from None
        return TestRun(
            id=uuid.uuid4().hex[:16],
            to=to,
            settings=settings,
            tls_context=context,
            withheld=withheld,
        )

    def start(self, to: str, smtp: Mapping[str, Any] | None = None) -> TestRun:
        """Prepare a run and start it in the background (call from the event loop); raises
        TooManyRuns while `max_running` runs are still going."""
        if len(self._running) >= self._max_running:
            raise TooManyRuns(len(self._running))
        run = self.prepare(to, smtp)
        self._remember(run)
        self._running.add(run.id)
        run.task = asyncio.get_running_loop().create_task(self._execute_counted(run))
        return run

    async def _execute_counted(self, run: TestRun) -> None:
        try:
            await self.execute(run)
        finally:
            self._running.discard(run.id)

    def get(self, run_id: str) -> TestRun | None:
        return self._runs.get(run_id)

    async def execute(self, run: TestRun) -> None:
        """Compose the test e-mail and send it; never raises, the outcome is in the run."""
        try:
            await self._send(run)
        except DeliveryError as error:
            run.add(error.stage, f"{error}")
            run.add("hint", error.hint)
            run.finish("failed")
        except Exception as error:
            log.exception("Apply & Test %s failed unexpectedly", run.id)
            run.add("error", f"{type(error).__name__}: {error}")
            run.add("hint", "an internal error; the service log has the details")
            run.finish("failed")
        else:
            run.finish("sent")

    async def _send(self, run: TestRun) -> None:
        settings = run.settings
        at = datetime.now(UTC)
        mail = apply_test_mail(settings, run.to, at.timestamp())
        pictures = await snapshots.take(self._camera, [mail])
        message = await asyncio.to_thread(
            prepare_message, mail, settings, pictures, event_id=f"test-{run.id}", at=at
        )
        shown = sum(len(taken.images) for taken in pictures.values())
        run.add(
            "message",
            f"test e-mail to {run.to}: {len(message.data)} bytes, "
            f"{shown} snapshot ({SNAPSHOT_WIDTH}x{SNAPSHOT_HEIGHT})",
        )
        data = await _signed(run, message.data)
        async with SmtpSession(
            settings.smtp,
            run.tls_context,
            on_stage=run.add,
            timeout=self._timeout,
            withheld=run.withheld,
        ) as session:
            await session.send(message.sender, message.recipient, data)

    def _remember(self, run: TestRun) -> None:
        self._runs[run.id] = run
        while len(self._runs) > self._keep:
            self._runs.popitem(last=False)


async def _signed(run: TestRun, data: bytes) -> bytes:
    """The test e-mail signed as the worker signs every mail, and the signature reported."""
    dkim = run.settings.smtp.dkim
    if not dkim.enabled:
        run.add("dkim", "not signed: DKIM signing (smtp.dkim.enabled) is off")
        return data
    try:
        signed = await asyncio.to_thread(dkimkey.sign, data, dkim)
    except dkimkey.DkimError as error:
        raise PermanentDeliveryError(
            f"the message could not be DKIM-signed: {error}",
            hint="generate a key on the SMTP tab (or POST /api/dkim/key)",
            stage="unknown",
        ) from None
    tags = dkimkey.signature_tags(signed)
    run.add(
        "dkim",
        f"signed: a={tags.get('a')}, c={tags.get('c')}, d={tags.get('d')}, s={tags.get('s')},"
        f" h={tags.get('h')}; the receiver looks the key up at {dkimkey.dns_name(dkim)}",
    )
    return signed


def apply_test_mail(settings: model.Settings, to: str, now: float) -> Mail:
    """The test e-mail: to `to`, with one snapshot of the moment it is sent."""
    return Mail(
        kind=KIND,
        recipient=to,
        subject_template=SUBJECT,
        body_template=BODY,
        values=placeholders.values(Context(KIND, settings, datetime.fromtimestamp(now, UTC))),
        snapshots=model.Snapshots(attach=True, count=1),
        span=(now, now),
        size=(SNAPSHOT_WIDTH, SNAPSHOT_HEIGHT),
    )
