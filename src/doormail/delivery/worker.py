"""The delivery worker: drains the outbox through one SMTP session at a time. It wakes when mail
is committed (`notify()`) and on a short poll (mail queued by other processes, retries coming
due), claims due mail under a lease, sends it over one reused connection, kept open for a moment
between rounds, and records what the server said. It decides nothing about events and never
builds a message."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from doormail.delivery.session import (
    AccessToken,
    DeliveryError,
    SmtpSession,
    TemporaryDeliveryError,
)
from doormail.outbox import Claimed, Outcome, Queue
from doormail.settings import Smtp
from doormail.store.failures import unavailable

log = logging.getLogger("doormail.delivery")

TlsContextFactory = Callable[[Smtp], ssl.SSLContext]
# The settings a round runs with, and a batch of mail it claimed.
_Batch = tuple[Smtp, list[Claimed]]


def worker_name() -> str:
    """Who holds a lease: the host and process, unique per worker."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class WorkerOptions:
    """How much the worker takes at once, how long it may hold it, and how long an SMTP
    connection is kept for the next round: `connection_idle` seconds without mail, as Postfix's
    smtp_connection_cache_time_limit (2 s), far below a server's own idle timeout (RFC 5321
    4.5.3.2.7 asks for 5 minutes), and `connection_reuse` seconds in all, as Postfix's
    smtp_connection_reuse_time_limit, so that a certificate or token replaced meanwhile is taken
    up even under steady traffic."""

    batch: int = 100
    # Renewed every third of it while held; a process that died leaves its mail to the next
    # one within this (SPEC section 11: at most 60 s).
    lease_seconds: float = 30.0
    poll_interval: float = 1.0
    timeout: float = 30.0
    connection_idle: float = 2.0
    connection_reuse: float = 300.0


class _Recorder:
    """Saves outcomes in the background while the next mail is being sent, several to a
    transaction: a fast server is not held up by the disk once per mail, and a lone mail is
    recorded within `delay` seconds."""

    # While the database is away for a moment (a restart, a failover), outcomes are kept and
    # saved again this often, this many times: a mail the server took is then not sent again
    # once its lease runs out.
    RETRY_PAUSE = 1.0
    RETRIES = 10

    def __init__(self, outbox: Queue, owner: str, *, batch: int = 64, delay: float = 0.01) -> None:
        self._outbox = outbox
        self._owner = owner
        self._batch = batch
        self._delay = delay
        self._pending: list[Outcome] = []
        self._enough = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add(self, outcome: Outcome) -> None:
        self._pending.append(outcome)
        if len(self._pending) >= self._batch:
            self._enough.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        retries = 0
        while self._pending:
            if not self._enough.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._enough.wait(), self._delay)
            batch, self._pending = self._pending, []
            self._enough.clear()
            try:
                await asyncio.to_thread(self._outbox.record, batch, owner=self._owner)
            except Exception as error:
                if unavailable(error) is not None and retries < self.RETRIES:
                    retries += 1
                    self._pending[:0] = batch
                    log.warning("the database is unavailable; saving %d outcomes again", len(batch))
                    await asyncio.sleep(self.RETRY_PAUSE)
                    continue
                # The mail stays `sending`; when the lease runs out it is claimed and sent again
                # (a duplicate is better than a loss).
                log.exception("could not record the outcome of %d mails", len(batch))
            retries = 0

    async def finish(self) -> None:
        """Save every outcome so far, now, even when the caller is being cancelled."""
        self._enough.set()
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)


@dataclass(frozen=True)
class _Connection:
    """An open SMTP session, the settings it was opened with, and when (monotonic seconds)."""

    session: SmtpSession
    smtp: Smtp
    opened: float


class _ConnectionCache:
    """The connection a round leaves open for the next one, as Postfix's connection cache does:
    reused while its settings are unchanged, it is still open and neither idle nor reuse time
    has run out. Whoever takes it owns it until it is kept again, so rounds never share one."""

    def __init__(self, idle: float, reuse: float) -> None:
        self._idle = idle
        self._reuse = reuse
        self._kept: _Connection | None = None
        self._idle_since = 0.0

    async def take(self, smtp: Smtp) -> _Connection | None:
        kept, self._kept = self._kept, None
        if kept is None:
            return None
        if kept.smtp == smtp and kept.session.connected and self._left(kept) > 0:
            return kept
        await _close(kept.session)
        return None

    async def keep(self, connection: _Connection) -> None:
        """Keep `connection` for the next round; closed instead when it cannot be reused."""
        now = time.monotonic()
        usable = connection.session.connected and now - connection.opened < self._reuse
        if not usable or self._idle <= 0 or self._kept is not None:
            await _close(connection.session)
            return
        self._kept, self._idle_since = connection, now

    def expires_in(self) -> float:
        """Seconds until the kept connection is to be closed (infinite when none is kept)."""
        return float("inf") if self._kept is None else self._left(self._kept)

    def _left(self, kept: _Connection) -> float:
        until = min(self._idle_since + self._idle, kept.opened + self._reuse)
        return until - time.monotonic()

    async def close_expired(self) -> None:
        if self._kept is not None and self.expires_in() <= 0:
            await self.close()

    async def close(self) -> None:
        kept, self._kept = self._kept, None
        if kept is not None:
            await _close(kept.session)


class DeliveryWorker:
    """One worker; `run()` goes into the service's runners, `notify()` is called after an
    enqueue commits."""

    def __init__(
        self,
        outbox: Queue,
        smtp_settings: Callable[[], Smtp],
        tls_context: TlsContextFactory,
        *,
        options: WorkerOptions | None = None,
        owner: str | None = None,
        access_token: AccessToken | None = None,
    ) -> None:
        self.outbox = outbox
        self._smtp_settings = smtp_settings
        self._tls_context = tls_context
        self.options = options or WorkerOptions()
        self.owner = owner or worker_name()
        self._access_token = access_token
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connections = _ConnectionCache(
            self.options.connection_idle, self.options.connection_reuse
        )
        # Connections outlive a round only while run() goes on, which closes them.
        self._running = False
        self._expired_at = -float("inf")

    def notify(self) -> None:
        """Wake the worker now; callable from any thread (FastAPI runs `def` routes in a pool)."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(wake.set)

    async def run(self) -> None:
        """Deliver until cancelled; the connection kept between rounds is closed on the way out."""
        self._loop = asyncio.get_running_loop()
        self._wake = wake = asyncio.Event()
        self._running = True
        try:
            while True:
                _stop_if_cancelled()
                wake.clear()
                try:
                    await self._deliver_due()
                    pause = await self._between_rounds(wake)
                except Exception:
                    log.exception("delivery round failed; trying again shortly")
                    pause = self.options.poll_interval
                if not wake.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), min(pause, self._idle_left()))
                await self._connections.close_expired()
        finally:
            self._running = False
            await asyncio.shield(self._connections.close())

    def _idle_left(self) -> float:
        return max(self._connections.expires_in(), 0.0)

    async def _between_rounds(self, wake: asyncio.Event) -> float:
        """How long to sleep: until the next mail is due, at most a poll interval; overdue mail
        is expired first when its time has come. When mail was committed during the round
        (`wake` is set), the next round starts without asking the database."""
        expire = self._expiry_due()
        if wake.is_set() and not expire:
            return 0.0
        return await asyncio.to_thread(self._expire_and_pause, expire)

    def _expiry_due(self) -> bool:
        # Once a poll interval is soon enough: a round tries (and then expires) the overdue
        # mail it claims, so only mail nobody could try (sending disabled, or every worker down)
        # waits for this, and it is not worth a database write after every mail.
        now = time.monotonic()
        if now - self._expired_at < self.options.poll_interval:
            return False
        self._expired_at = now
        return True

    def _expire_and_pause(self, expire: bool) -> float:
        if expire:
            self.outbox.expire_overdue()
        due = self.outbox.next_due()
        pause = self.options.poll_interval
        if due is not None:
            pause = min(pause, max(due - time.time(), 0.0))
        return pause

    async def drain(self) -> int:
        """Send everything due now; returns how many mails were attempted. Mail waiting past its
        deadline is expired afterwards (after its last attempt), at most once a poll interval.
        Outside `run()` the SMTP connection is closed at the end; within it, it is kept for the
        next round."""
        try:
            attempted = await self._deliver_due()
            if self._expiry_due():
                await asyncio.to_thread(self.outbox.expire_overdue)
        finally:
            if not self._running:
                await asyncio.shield(self._connections.close())
        return attempted

    async def _deliver_due(self) -> int:
        recorder = _Recorder(self.outbox, self.owner)
        held: set[str] = set()
        renewer = asyncio.create_task(self._renew_leases(held))
        connection: _Connection | None = None
        # Once the session itself fails, the rest of the due mail shares that outcome without
        # another attempt to connect (the server is down, or a setting cannot work).
        session_error: DeliveryError | None = None
        attempted = 0
        finished = False
        upcoming: asyncio.Task[_Batch] | None = self._claim(None)
        try:
            while upcoming is not None:
                # Shielded: a claim cancelled midway may still commit in its thread, and what
                # it claimed must then be given back (below), not left to its lease.
                smtp, claimed = await asyncio.shield(upcoming)
                # A short batch took everything due; mail committed since calls notify().
                full = len(claimed) >= self.options.batch
                # The next batch is read from the database while this one is being sent.
                upcoming = self._claim(smtp) if full else None
                held.update(item.id for item in claimed)
                if claimed and connection is None and session_error is None:
                    connection, session_error = await self._connect(smtp)
                for index, item in enumerate(claimed):
                    if session_error is None and connection is not None:
                        following = claimed[index + 1] if index + 1 < len(claimed) else None
                        outcome, session_error = await self._send(
                            connection.session, item, following
                        )
                    else:
                        assert session_error is not None
                        outcome = _outcome_of(item, session_error)
                    recorder.add(outcome)
                    held.discard(item.id)
                    _stop_if_cancelled()
                attempted += len(claimed)
            finished = True
        finally:
            renewer.cancel()
            await asyncio.shield(self._release(upcoming, held))
            if connection is not None:
                await self._put_back(connection, reusable=finished)
            await recorder.finish()
        return attempted

    async def _put_back(self, connection: _Connection, *, reusable: bool) -> None:
        # A session interrupted midway (the worker stopping) may be inside a transaction.
        if reusable:
            await self._connections.keep(connection)
        else:
            await asyncio.shield(_close(connection.session))

    async def _release(self, upcoming: asyncio.Task[_Batch] | None, held: set[str]) -> None:
        """Hand back mail claimed but not sent when the worker stops (cancelled): the batch read
        ahead and the rest of the current one must not wait for their leases to run out."""
        ids = set(held)
        if upcoming is not None:
            with contextlib.suppress(Exception):
                ids.update(item.id for item in (await upcoming)[1])
        if ids:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.outbox.release, self.owner, ids)

    def _claim(self, smtp: Smtp | None) -> asyncio.Task[_Batch]:
        return asyncio.create_task(asyncio.to_thread(self._settings_and_claim, smtp))

    def _settings_and_claim(self, smtp: Smtp | None) -> _Batch:
        """The settings (read at the start of a round) and, while sending is enabled, a batch
        of due mail: one trip to a thread, since either may wait for the database."""
        if smtp is None:
            smtp = self._smtp_settings()
        if not smtp.enabled:
            return smtp, []
        options = self.options
        return smtp, self.outbox.claim(self.owner, options.batch, options.lease_seconds)

    async def _connect(self, smtp: Smtp) -> tuple[_Connection | None, DeliveryError | None]:
        """The connection kept from an earlier round when it suits `smtp`, else a new one."""
        kept = await self._connections.take(smtp)
        if kept is not None:
            return kept, None
        opened = time.monotonic()
        session, error = await self._open(smtp)
        if session is None:
            return None, error
        return _Connection(session, smtp, opened), None

    async def _open(self, smtp: Smtp) -> tuple[SmtpSession | None, DeliveryError | None]:
        try:
            context = await self._context(smtp)
            session = SmtpSession(
                smtp, context, timeout=self.options.timeout, access_token=self._access_token
            )
            await session.open()
        except DeliveryError as error:
            log.warning("SMTP session to %s:%s failed: %s", smtp.server, smtp.port, _text(error))
            return None, error
        except Exception as error:
            log.exception("SMTP session to %s:%s failed", smtp.server, smtp.port)
            return None, _unexpected(error)
        return session, None

    async def _context(self, smtp: Smtp) -> ssl.SSLContext | None:
        if smtp.security == "none":
            # No TLS will be started, so no certificate slot is read (an empty one would fail
            # the session for nothing).
            return None
        return await asyncio.to_thread(self._tls_context, smtp)

    async def _send(
        self, session: SmtpSession, item: Claimed, following: Claimed | None = None
    ) -> tuple[Outcome, DeliveryError | None]:
        """One mail over the open session, announcing the `following` one; the second value
        is set when the session is lost for good (it could not be opened again)."""
        then = None
        if following is not None:
            then = (following.sender, following.recipient, following.data)
        for retry_on_new_connection in (True, False):
            try:
                reply = await session.send(item.sender, item.recipient, item.data, then=then)
            except DeliveryError as error:
                if error.scope == "session":
                    # Every mail waiting for this server shares it (Postfix's site failures).
                    return _outcome_of(item, error), error
                if retry_on_new_connection and _never_left(session, error):
                    continue
                return _outcome_of(item, error), None
            except Exception as error:
                log.exception("sending mail %s failed unexpectedly", item.id)
                return _outcome_of(item, _unexpected(error)), None
            return Outcome(item.id, "sent", str(reply)), None
        raise AssertionError("unreachable")

    async def _renew_leases(self, held: set[str]) -> None:
        every = self.options.lease_seconds / 3
        while True:
            await asyncio.sleep(every)
            if held:
                await asyncio.to_thread(
                    self.outbox.renew, self.owner, set(held), self.options.lease_seconds
                )


def _stop_if_cancelled() -> None:
    # On Python 3.11, asyncio.wait_for (inside aiosmtplib) can swallow a cancellation whose
    # reply arrived at the same moment; the request is still on the task, so honour it here
    # rather than drain the whole queue while the service is shutting down.
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _never_left(session: SmtpSession, error: DeliveryError) -> bool:
    return error.before_message and not session.connected


def _text(error: DeliveryError) -> str:
    parts = [error.message]
    if error.reply and error.reply not in error.message:
        parts.append(f"server said: {error.reply}")
    if error.hint:
        parts.append(error.hint)
    return "; ".join(parts)


def _outcome_of(item: Claimed, error: DeliveryError) -> Outcome:
    if error.temporary:
        return Outcome(item.id, "temporary", _text(error), error.reply or None)
    return Outcome(item.id, "failed", _text(error), error.reply or None)


def _unexpected(error: Exception) -> DeliveryError:
    # An error the session did not classify is treated as temporary: the deadline bounds it.
    return TemporaryDeliveryError(
        f"unexpected error: {error!r}", hint="see the service log", stage="unknown"
    )


async def _close(session: SmtpSession) -> None:
    with contextlib.suppress(Exception):
        await session.close()
