"""Talking to a 2N intercom's HTTP API: one httpx client per intercom (Digest, or Basic when the
intercom asks for it; `verify_certificate`), the manual's reply envelope (`success`, `result`,
`error.code`) turned into results and named errors. Shared by the log follower, the device
test and the intercom's camera."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Generator, Mapping
from typing import Any

import httpx

from doormail.devices.model import Intercom2N

# The manual's error 12 "invalid parameter value": for `/api/log/pull` an unknown channel
# (the intercom restarted, or the subscription expired).
INVALID_PARAMETER = 12
CONNECT_SECONDS = 5.0


class IntercomError(Exception):
    """A request the intercom did not answer with a result; `stage` says where it failed
    (reach, tls, auth, api) and `code` is the manual's error code when it gave one."""

    def __init__(self, stage: str, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.code = code


@functools.cache
def _tls(verify: bool) -> ssl.SSLContext:
    # One context per choice for every intercom: each costs about 1 MB and 10 ms to build,
    # and a process may follow hundreds of intercoms.
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _Auth(httpx.Auth):
    """Digest when the intercom offers it (also when it offers Basic first), else Basic."""

    def __init__(self, username: str, password: str) -> None:
        self._digest = httpx.DigestAuth(username, password)
        self._basic = httpx.BasicAuth(username, password)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # httpx's Digest signs each request with the last challenge (one round trip a pull)
        # and finds a Digest challenge among several; Basic only when no Digest is offered.
        digest = self._digest.auth_flow(request)
        response = yield next(digest)
        try:
            signed = digest.send(response)
        except StopIteration:
            offered = ",".join(response.headers.get_list("www-authenticate")).lower()
            if response.status_code == 401 and "basic" in offered:
                yield next(self._basic.auth_flow(request))
            return
        yield signed


def client_for(source: Intercom2N, timeout: float = 30.0) -> httpx.AsyncClient:
    """An httpx client for the intercom `source` names; close it with `aclose()`."""
    auth = _Auth(source.username, source.password) if source.username else None
    verify: ssl.SSLContext | bool = _tls(source.verify_certificate)
    return httpx.AsyncClient(
        base_url=source.url,
        auth=auth,
        verify=verify,
        timeout=httpx.Timeout(timeout, connect=CONNECT_SECONDS),
        limits=httpx.Limits(max_connections=4, max_keepalive_connections=2),
    )


async def call(
    client: httpx.AsyncClient,
    path: str,
    params: Mapping[str, str | int] | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """The `result` of one API function; IntercomError when there is none. `timeout` is the
    read timeout of this request (a long poll's is longer than its own `timeout`)."""
    limit = httpx.USE_CLIENT_DEFAULT if timeout is None else httpx.Timeout(timeout, connect=5)
    try:
        response = await client.get(path, params=dict(params or {}), timeout=limit)
    except httpx.ConnectError as error:
        stage = "tls" if "SSL" in str(error) or "certificate" in str(error) else "reach"
        raise IntercomError(stage, f"{client.base_url}: {error or type(error).__name__}") from None
    except httpx.HTTPError as error:
        raise IntercomError("reach", f"{path}: {type(error).__name__} {error}".strip()) from None
    if response.status_code == 401:
        raise IntercomError("auth", "the intercom refused the username or password", 9)
    if response.status_code != 200:
        raise IntercomError("api", f"{path}: HTTP {response.status_code}")
    return _result(path, response)


async def picture(client: httpx.AsyncClient, params: Mapping[str, str | int]) -> bytes:
    """A JPEG from `/api/camera/snapshot`; IntercomError when the reply is not one."""
    try:
        response = await client.get("/api/camera/snapshot", params=dict(params))
    except httpx.HTTPError as error:
        raise IntercomError("reach", f"camera: {type(error).__name__}") from None
    if response.headers.get("content-type", "").startswith("image/jpeg"):
        return response.content
    if response.status_code == 401:
        raise IntercomError("auth", "the intercom refused the username or password", 9)
    _result("/api/camera/snapshot", response)
    raise IntercomError("api", "/api/camera/snapshot gave no picture")


def _result(path: str, response: httpx.Response) -> dict[str, Any]:
    try:
        reply = response.json()
    except ValueError:
        raise IntercomError("api", f"{path}: the reply is not JSON") from None
    if not isinstance(reply, dict):
        raise IntercomError("api", f"{path}: the reply is not a JSON object")
    if reply.get("success") is True:
        result = reply.get("result", {})
        return result if isinstance(result, dict) else {}
    found = reply.get("error")
    error: dict[str, Any] = found if isinstance(found, dict) else {}
    code = error.get("code") if isinstance(error.get("code"), int) else None
    text = error.get("description") or "error"
    param = f" ({error['param']})" if error.get("param") else ""
    stage = "auth" if code in (8, 9, 10) else "api"
    raise IntercomError(stage, f"{path}: error {code} {text}{param}", code)
