"""Authentication for every route but /healthz: HTTP Basic for the admin, bearer tokens, and
(for the web UI) a session cookie that logout and a password change end. Password guesses are
slowed down before Argon2 runs, per account and per client address, and at most two Argon2
checks run at once. A token of scope `events` may call only the routes marked
`for_events_tokens`; the admin, a UI session and an `admin` token may call every route."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import math
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from doormail.accounts import Accounts, Caller
from doormail.web.state import service_of

_WINDOW = 300.0
_FREE_FAILURES = 3
_MAX_DELAY = 8.0
# An attempt that would wait longer than this is refused at once (429) instead of held open.
_LONGEST_WAIT = 10.0
# argon2-cffi's default costs 64 MiB per check: two at a time bound the memory guessing can take.
_CHECKS_AT_ONCE = 2
_SLOT_WAIT = 1.0
# Failures kept per account or address: the delay stops growing long before this many.
_KEPT_FAILURES = 16
_KEPT_KEYS = 10_000
# Account names are kept only this long (the accounts table's own limit, plus one): a user name
# of a megabyte from the login form must not stay in memory.
_NAME_KEPT = 65
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

# The endpoints a door station's token (scope `events`) may call: SPEC section 1.
_EVENTS_SCOPE_ENDPOINTS: set[Callable[..., Any]] = set()
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def for_events_tokens(endpoint: Endpoint) -> Endpoint:
    """Mark a route's endpoint as open to `events` tokens (posting events, sending e-mail)."""
    _EVENTS_SCOPE_ENDPOINTS.add(endpoint)
    return endpoint


class TooManyAttempts(Exception):
    """A password check refused without running: too many recent failures, or no free Argon2
    slot. `retry_after` is in seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many attempts; try again in {math.ceil(retry_after)} s")
        self.retry_after = retry_after

    @property
    def seconds(self) -> int:
        return max(1, math.ceil(self.retry_after))


def _delay(failures: int) -> float:
    excess = failures - _FREE_FAILURES
    return 0.0 if excess < 0 else min(_MAX_DELAY, 0.25 * 2**excess)


@dataclass
class _Failures:
    """Recent failures under one account or address, each with its time and the other key (the
    address of an account's failure, the account of an address's), so that a correct password
    can forget exactly its own."""

    times: deque[tuple[float, str | None]] = field(
        default_factory=lambda: deque(maxlen=_KEPT_FAILURES)
    )
    next_slot: float = 0.0


class FailureThrottle:
    """Says how long a credential check waits, counting recent failures per client address
    and per account: nothing for the first few, then doubling up to a ceiling.

    An address's attempts queue behind each other, so that sending many at once gains nothing.
    An account's delay applies to each attempt on its own: an attack from many addresses slows
    the owner down but cannot queue them out. Only a correct password forgets failures, and
    only those of its account from its address (most likely the owner mistyping): a token or
    another account's password says nothing about who made them."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, keys: int = _KEPT_KEYS) -> None:
        self._clock = clock
        self._keys = keys
        self._addresses: OrderedDict[str, _Failures] = OrderedDict()
        self._accounts: OrderedDict[str, _Failures] = OrderedDict()

    def admit(self, address: str, account: str | None = None) -> float:
        """Count an attempt as failed until it proves right, and return how long it waits
        before the check; TooManyAttempts when that would be longer than _LONGEST_WAIT."""
        now = self._clock()
        account = None if account is None else account[:_NAME_KEPT]
        at_address = self._recent(self._addresses, address, now)
        wait = max(at_address.next_slot - now, 0.0) + _delay(len(at_address.times))
        at_account = None if account is None else self._recent(self._accounts, account, now)
        if at_account is not None:
            wait = max(wait, _delay(len(at_account.times)))
        if wait > _LONGEST_WAIT:
            raise TooManyAttempts(wait)
        at_address.next_slot = now + wait
        at_address.times.append((now, account))
        if at_account is not None:
            at_account.times.append((now, address))
        return wait

    def succeeded(self, address: str, account: str) -> None:
        """A correct password for `account` from `address`."""
        account = account[:_NAME_KEPT]
        for table, key, other in (
            (self._addresses, address, account),
            (self._accounts, account, address),
        ):
            entry = table.get(key)
            if entry is not None:
                kept = [failure for failure in entry.times if failure[1] != other]
                entry.times.clear()
                entry.times.extend(kept)

    def size(self) -> int:
        """How many accounts and addresses are remembered."""
        return len(self._addresses) + len(self._accounts)

    def _recent(self, table: OrderedDict[str, _Failures], key: str, now: float) -> _Failures:
        entry = table.get(key)
        if entry is None:
            entry = table[key] = _Failures()
            if len(table) > self._keys:
                table.popitem(last=False)
        else:
            table.move_to_end(key)
        while entry.times and now - entry.times[0][0] >= _WINDOW:
            entry.times.popleft()
        return entry


class PasswordGate:
    """Every password check of the HTTP side (Basic and the login page). A password verified
    before passes at once (only the right password matches it, so guessing gains nothing there);
    any other waits its turn from the throttle, then for one of the Argon2 slots (or is refused
    when none frees up soon)."""

    def __init__(
        self,
        accounts: Accounts,
        throttle: FailureThrottle | None = None,
        *,
        at_once: int = _CHECKS_AT_ONCE,
        slot_wait: float = _SLOT_WAIT,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.throttle = throttle or FailureThrottle()
        self._accounts = accounts
        self._slots = asyncio.Semaphore(at_once)
        self._slot_wait = slot_wait
        self._sleep = sleep

    async def check(self, name: str, password: str, address: str) -> bool:
        """True for `name`'s password; TooManyAttempts when it is not checked now."""
        if await run_in_threadpool(self._accounts.remembered, name, password):
            self.throttle.succeeded(address, name)
            return True
        await self._wait(self.throttle.admit(address, name))
        try:
            await asyncio.wait_for(self._slots.acquire(), self._slot_wait)
        except TimeoutError:
            raise TooManyAttempts(self._slot_wait) from None
        try:
            valid = await run_in_threadpool(self._accounts.check_password, name, password)
        finally:
            self._slots.release()
        if valid:
            self.throttle.succeeded(address, name)
        return valid

    async def token_refused(self, address: str) -> None:
        """A wrong token (or an unreadable Authorization header) counts against its address
        and is answered after that address's delay."""
        await self._wait(self.throttle.admit(address))

    async def _wait(self, seconds: float) -> None:
        if seconds > 0:
            await self._sleep(seconds)


def client_address(request: Request) -> str:
    """The client's address: the connection's peer, or what a proxy named by `doormail serve
    --forwarded-allow-ips` said it is (never a header from anyone else)."""
    return request.client.host if request.client else "unknown"


def _unauthorized() -> HTTPException:
    return HTTPException(
        401, "authentication required", headers={"WWW-Authenticate": 'Basic realm="doormail"'}
    )


def _too_many_attempts(refused: TooManyAttempts) -> HTTPException:
    return HTTPException(429, str(refused), headers={"Retry-After": str(refused.seconds)})


async def authenticate(request: Request) -> Caller:
    """The caller and its scope; 401 (after a growing delay on repeated failures) otherwise, and
    403 when the caller's scope does not cover the route."""
    return _permitted(request, await _authenticated(request))


def _permitted(request: Request, caller: Caller) -> Caller:
    if caller.scope != "admin" and request.scope.get("endpoint") not in _EVENTS_SCOPE_ENDPOINTS:
        raise HTTPException(
            403, f"this token's scope is {caller.scope}: it may only post events and send e-mail"
        )
    return caller


async def _authenticated(request: Request) -> Caller:
    session_user = (
        request.scope.get("session", {}).get("user") if "session" in request.scope else None
    )
    header = request.headers.get("authorization", "")
    if isinstance(session_user, str):
        if request.method in _SAFE_METHODS or _csrf_header_matches(request):
            return Caller(session_user, "admin")
        if not header:
            # A cookie alone does not prove the page made the request (CSRF): changes made with
            # the session need the page's token in X-CSRF-Token.
            raise HTTPException(403, "missing or wrong X-CSRF-Token header")
    if not header:
        raise _unauthorized()
    gate: PasswordGate = request.app.state.passwords
    address = client_address(request)
    scheme, _, value = header.partition(" ")
    credentials = _basic_credentials(value) if scheme.lower() == "basic" else None
    try:
        if credentials is not None:
            if await gate.check(*credentials, address):
                return Caller(credentials[0], "admin")
            raise _unauthorized()
        if scheme.lower() == "bearer":
            accounts = service_of(request).accounts
            caller = await run_in_threadpool(accounts.check_token, value.strip())
            if caller is not None:
                return caller
        await gate.token_refused(address)
    except TooManyAttempts as refused:
        raise _too_many_attempts(refused) from None
    raise _unauthorized()


def _csrf_header_matches(request: Request) -> bool:
    expected = request.scope["session"].get("csrf")
    presented = request.headers.get("x-csrf-token", "")
    return isinstance(expected, str) and hmac.compare_digest(expected.encode(), presented.encode())


def _basic_credentials(value: str) -> tuple[str, str] | None:
    try:
        user, _, password = base64.b64decode(value.strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


class SessionEpochs:
    """Ends sessions made before their account's current session epoch (a logout or a password
    change since, in any process): such a session is emptied before anything reads it, so the
    request counts as not logged in and the browser's cookie is deleted. Sits inside the
    session middleware; costs one read by primary key per request with a logged-in session."""

    def __init__(self, app: ASGIApp, epoch_of: Callable[[str], int | None]) -> None:
        self._app = app
        self._epoch_of = epoch_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        session = scope.get("session") if scope["type"] == "http" else None
        # The static files need no session: a page's stylesheet costs no read.
        if session and not scope["path"].startswith("/static/"):
            user = session.get("user")
            if isinstance(user, str):
                epoch = await run_in_threadpool(self._epoch_of, user)
                if epoch is None or session.get("epoch") != epoch:
                    session.clear()
        await self._app(scope, receive, send)
