"""Authentication for every route but /healthz: HTTP Basic for the admin, bearer tokens, and
(for the web UI) a session cookie. Repeated failures from one client are slowed down. A token
of scope `events` may call only the routes marked `for_events_tokens`; the admin, a UI session
and an `admin` token may call every route."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from doormail.accounts import ADMIN, Caller
from doormail.web.state import service_of

_WINDOW = 300.0
_FREE_FAILURES = 3
_MAX_DELAY = 8.0
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

# The endpoints a door station's token (scope `events`) may call: SPEC section 1.
_EVENTS_SCOPE_ENDPOINTS: set[Callable[..., Any]] = set()
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def for_events_tokens(endpoint: Endpoint) -> Endpoint:
    """Mark a route's endpoint as open to `events` tokens (posting events, sending e-mail)."""
    _EVENTS_SCOPE_ENDPOINTS.add(endpoint)
    return endpoint


class FailureThrottle:
    """Counts recent authentication failures per client and says how long to wait before
    answering the next one: nothing for the first few, then doubling up to a ceiling."""

    def __init__(self) -> None:
        self._failures: dict[str, list[float]] = defaultdict(list)

    def delay(self, client: str) -> float:
        now = time.monotonic()
        recent = [t for t in self._failures.get(client, []) if now - t < _WINDOW]
        self._failures[client] = recent
        excess = len(recent) - _FREE_FAILURES
        return 0.0 if excess < 0 else min(_MAX_DELAY, 0.25 * 2**excess)

    def failed(self, client: str) -> None:
        self._failures[client].append(time.monotonic())

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)


def _unauthorized() -> HTTPException:
    return HTTPException(
        401, "authentication required", headers={"WWW-Authenticate": 'Basic realm="doormail"'}
    )


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
    client = request.client.host if request.client else "unknown"
    throttle: FailureThrottle = request.app.state.throttle
    if not header:
        raise _unauthorized()
    caller = await run_in_threadpool(_check, request, header)
    if caller is None:
        await asyncio.sleep(throttle.delay(client))
        throttle.failed(client)
        raise _unauthorized()
    throttle.succeeded(client)
    return caller


def _csrf_header_matches(request: Request) -> bool:
    expected = request.scope["session"].get("csrf")
    presented = request.headers.get("x-csrf-token", "")
    return isinstance(expected, str) and hmac.compare_digest(expected.encode(), presented.encode())


def _check(request: Request, header: str) -> Caller | None:
    accounts = service_of(request).accounts
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return accounts.check_token(value.strip())
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if user == ADMIN and accounts.check_password(user, password):
            return Caller(user, "admin")
    return None
