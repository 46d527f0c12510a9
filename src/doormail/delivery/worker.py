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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from doormail import dkimkey
from doormail.delivery.pipelining import Ready
from doormail.delivery.session import (
    AccessToken,
    DeliveryError,
    PermanentDeliveryError,
    SmtpSession,
    TemporaryDeliveryError,
)
from doormail.dkimkey import DkimError
from doormail.outbox import Claimed, Outcome, Queue, Recording
from doormail.outbox.server import ServerWatch, waiting_text
from doormail.settings import Smtp
from doormail.store.failures import unavailable

log = logging.getLogger("doormail.delivery")

TlsContextFactory = Callable[[Smtp], ssl.SSLContext]
# The settings a round runs with, and a batch of mail it claimed.
_Batch = tuple[Smtp, list[Claimed]]
# What a round does: send due mail, probe the unreachable server first, or wait for it.
Gate = Literal["send", "probe", "wait"]


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
    """Saves outcomes in the background while the next mail is being sent. A mail's outcome
    is durable before the next mail's end of data goes out (`durable()`, awaited by the
    session), so a crash sends again at most the one mail in flight. Saving starts the moment
    an outcome comes, to run beside the sending of the next mail; what comes in while a save
    runs (mail that shared a session failure) goes together in the next one."""

    # While the database is away for a moment (a restart, a failover), outcomes are kept and
    # saved again this often, this many times: a mail the server took is then not sent again
    # once its lease runs out.
    RETRY_PAUSE = 1.0
    RETRIES = 10

    def __init__(self, recording: Recording) -> None:
        self._recording = recording
        self._pending: list[Outcome] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, outcome: Outcome) -> None:
        self._pending.append(outcome)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        retries = 0
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await asyncio.to_thread(self._recording.save, batch)
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

    def unsaved(self) -> Awaitable[None] | None:
        """None when every outcome so far is saved; else what to await until they are."""
        if not self._pending and (self._task is None or self._task.done()):
            return None
        return self.durable()

    async def durable(self) -> None:
        """Return once every outcome added so far is saved (or failed to be)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def finish(self) -> None:
        """Save every outcome so far, now, even when the caller is being cancelled."""
        await self.durable()
        await asyncio.shield(asyncio.to_thread(self._recording.close))


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
        server: ServerWatch | None = None,
    ) -> None:
        self.outbox = outbox
        self.server = server or ServerWatch(outbox.engine)
        # When the unreachable server is next probed (None while it is up): rounds wait for it.
        self._probe_at: float | None = None
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
        pause = self.options.poll_interval
        if self._probe_at is not None:
            # Due mail waits for the server: the next look is the next probe.
            return min(pause, max(self._probe_at - time.time(), 0.0))
        due = self.outbox.next_due()
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
        recorder = _Recorder(self.outbox.recording(self.owner))
        held: set[str] = set()
        renewer = asyncio.create_task(self._renew_leases(held))
        connection: _Connection | None = None
        # Once the session itself fails, the rest of the due mail shares that outcome without
        # another attempt to connect (the server is down, or a setting cannot work).
        session_error: DeliveryError | None = None
        attempted = 0
        finished = False
        upcoming: asyncio.Task[_Batch] | None = None
        try:
            smtp, gate = await asyncio.to_thread(self._gate)
            if gate == "probe":
                connection, session_error = await self._probe(smtp)
                gate = "send" if connection is not None or session_error is not None else "wait"
            upcoming = self._claim(smtp) if gate == "send" else None
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
                    session_error = await self._unreachable(session_error)
                for index, item in enumerate(claimed):
                    if session_error is None and connection is not None:
                        following = claimed[index + 1] if index + 1 < len(claimed) else None
                        outcome, error = await self._send(
                            connection, item, following, recorder.unsaved
                        )
                        session_error = await self._unreachable(error)
                        if isinstance(session_error, _Unreachable):
                            # It never left: the connection could not be opened again.
                            outcome = _outcome_of(item, session_error)
                    else:
                        assert session_error is not None
                        outcome = _outcome_of(item, session_error)
                    recorder.add(outcome)
                    held.discard(item.id)
                    _stop_if_cancelled()
                attempted += len(claimed)
                if isinstance(session_error, _Unreachable):
                    # The mail read ahead waits for the server too: given back (below), due
                    # as it was and not counted as tried.
                    break
            finished = True
        finally:
            renewer.cancel()
            await asyncio.shield(self._release(upcoming, held))
            if connection is not None:
                await self._put_back(connection, reusable=finished)
            await recorder.finish()
        return attempted

    def _gate(self) -> tuple[Smtp, Gate]:
        """The settings (read at the start of a round) and whether the round sends, probes the
        unreachable server (this worker's turn) or waits for another worker's probe."""
        smtp = self._smtp_settings()
        if not smtp.enabled:
            return smtp, "wait"
        state = self.server.read()
        self._probe_at = state.next_probe_at
        if state.up:
            return smtp, "send"
        return smtp, "probe" if self.server.take_probe() else "wait"

    async def _probe(self, smtp: Smtp) -> tuple[_Connection | None, DeliveryError | None]:
        """One connection to the unreachable server. When it answers (even with a refusal
        that is not about reachability, such as a failed AUTH) the outage is over and every
        mail waiting for it is due at once: it was never given a back-off for the outage."""
        connection, error = await self._connect(smtp, quiet=True)
        if error is not None and error.unreachable:
            state = await asyncio.to_thread(self.server.unreachable, _text(error), error.hint)
            self._probe_at = state.next_probe_at
            return None, None
        if await asyncio.to_thread(self.server.answered):
            log.warning("SMTP server %s:%s answers again", smtp.server, smtp.port)
        self._probe_at = None
        return connection, error

    async def _unreachable(self, error: DeliveryError | None) -> DeliveryError | None:
        """A session failure that means the server is not there is recorded as the server's
        state; the mail it concerns then waits for the server instead of backing off."""
        if error is None or not error.unreachable or isinstance(error, _Unreachable):
            return error
        state = await asyncio.to_thread(self.server.unreachable, _text(error), error.hint)
        log.warning("SMTP server unreachable: %s; probing it", _text(error))
        self._probe_at = state.next_probe_at
        return _Unreachable(waiting_text(state.since or time.time(), _text(error)), error)

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

    def _claim(self, smtp: Smtp) -> asyncio.Task[_Batch]:
        return asyncio.create_task(asyncio.to_thread(self._claim_with, smtp))

    def _claim_with(self, smtp: Smtp) -> _Batch:
        options = self.options
        return smtp, self.outbox.claim(self.owner, options.batch, options.lease_seconds)

    async def _connect(
        self, smtp: Smtp, *, quiet: bool = False
    ) -> tuple[_Connection | None, DeliveryError | None]:
        """The connection kept from an earlier round when it suits `smtp`, else a new one
        (`quiet`: a probe's failure is the outage going on, logged once when it began)."""
        kept = await self._connections.take(smtp)
        if kept is not None:
            return kept, None
        opened = time.monotonic()
        session, error = await self._open(smtp, quiet=quiet)
        if session is None:
            return None, error
        return _Connection(session, smtp, opened), None

    async def _open(
        self, smtp: Smtp, *, quiet: bool = False
    ) -> tuple[SmtpSession | None, DeliveryError | None]:
        try:
            context = await self._context(smtp)
            session = SmtpSession(
                smtp, context, timeout=self.options.timeout, access_token=self._access_token
            )
            await session.open()
        except DeliveryError as error:
            log.log(
                logging.DEBUG if quiet else logging.WARNING,
                "SMTP session to %s:%s failed: %s",
                smtp.server,
                smtp.port,
                _text(error),
            )
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
        self,
        connection: _Connection,
        item: Claimed,
        following: Claimed | None = None,
        before_end: Ready | None = None,
    ) -> tuple[Outcome, DeliveryError | None]:
        """One mail over the open session, signed with the DKIM key in force, announcing the
        `following` one, its end of data sent after `before_end`; the second value is set when
        the session is lost for good (it could not be opened again)."""
        session = connection.session
        try:
            data = await _signed(item.data, connection.smtp)
        except DkimError as error:
            return _outcome_of(item, _unsignable(error)), None
        then = None
        if following is not None:
            # Announced unsigned: only its size is read, and SIZE is an estimate (RFC 1870).
            then = (following.sender, following.recipient, following.data)
        for retry_on_new_connection in (True, False):
            try:
                reply = await session.send(
                    item.sender, item.recipient, data, then=then, before_end=before_end
                )
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


async def _signed(data: bytes, smtp: Smtp) -> bytes:
    """The mail as it goes out: DKIM-signed with the key in force now when signing is on (the
    outbox keeps the unsigned bytes, so a retry is signed with the key of its own attempt). In a
    thread: an RSA signature is a few milliseconds of arithmetic."""
    if not smtp.dkim.enabled:
        return data
    return await asyncio.to_thread(dkimkey.sign, data, smtp.dkim)


def _unsignable(error: DkimError) -> DeliveryError:
    return PermanentDeliveryError(
        f"the message could not be DKIM-signed: {error}",
        hint="generate a key (POST /api/dkim/key) or store a PEM RSA or Ed25519 key in "
        "smtp.dkim.private_key",
        stage="unknown",
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


class _Unreachable(TemporaryDeliveryError):
    """The server did not answer: the mails of the round wait for it (not a failed attempt)."""

    def __init__(self, text: str, cause: DeliveryError) -> None:
        super().__init__(text, hint=cause.hint, stage=cause.stage)


def _outcome_of(item: Claimed, error: DeliveryError) -> Outcome:
    if isinstance(error, _Unreachable):
        return Outcome(item.id, "unreachable", error.message)
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
