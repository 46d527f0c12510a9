"""An emulated 2N IP intercom: a real HTTP server on a loopback port that answers like the
intercom's HTTP API, written from the "HTTP API manual for 2N IP intercoms":

- 2.3 Replies to Requests: `{"success": true, "result": {...}}`, or `{"success": false,
  "error": {"code", "param", "description"}}` with HTTP 200 (401 when credentials are missing or
  wrong), and the manual's error codes (12 "invalid parameter value", ...).
- 3 HTTP API Services Security: Basic and Digest authentication, per intercom Digest only,
  Basic only, both (Basic offered first) or none; 4 User Accounts: each account's privileges.
- 5.1.1 api system info, 5.1.2 api system status.
- 5.8.1 api camera caps, 5.8.2 api camera snapshot (`width`, `height`, `source`, `time` within
  the <-30, 0> seconds the intercom keeps); each picture encodes the moment it shows
  (`tests.camera.pattern.moment_of` reads it back).
- 5.10.1 api log caps, 5.10.2 api log subscribe (`include` new, all or -t seconds, `filter`,
  `duration`), 5.10.3 api log unsubscribe, 5.10.4 api log pull (`id`, `timeout`: a long poll
  answered as soon as an event arrives, at most 128 events a pull); a history of the last 10,000
  events, ids from 1 after each start, `utcTime`/`upTime`/`tzShift` on the intercom's clock. An
  account sees only the events its privileges allow (Call/phone monitoring for calls and SIP
  registration, UID monitoring for cards, fingerprints, Bluetooth and authentication), in its
  channels and, here, in its `/api/log/caps` too.

What it leaves out: every other function (an unknown path is error 2), HTTPS, the server-push
stream of `fps`, Digest's SHA-256 and auth-int, nonce-count replay checks, licences, and events
beyond those a door station's mail needs (see `eventlog.EVENTS`). Where the manual was not to
be read in full it follows what the manual's own examples show: the channel of an unknown,
unsubscribed, expired or pre-restart id is error 12 with `param` "id"; a missing parameter is
error 11; a request without valid credentials is 401 with error 9 (8 for a method the intercom
does not offer). Valid JSON is sent where the manual's examples show a trailing comma.

Tests control it through Python (`Intercom` in an event loop, `IntercomThread` from plain
code, both with `append` and the door's helpers of `LogWriter`) and inject faults: a 500 for
the next requests, a connection dropped without a reply, a slow reply, and `restart()`. Run as
`python -m tests.intercom2n.emulator --port P --user U --password W` (or `--count N
--first-port P` for many intercoms) it is a process of its own, which `RemoteIntercom` drives
through `/_emulator/...`, a path the real API does not use."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http
import itertools
import json
import math
import random
import resource
import signal
import threading
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl

import h11
import httpx

from tests.camera.pattern import jpeg_frame
from tests.intercom2n.auth import PRIVILEGES, Account, Authenticator, AuthMethods, Refused
from tests.intercom2n.eventlog import (
    DEFAULT_DURATION,
    EVENTS,
    HISTORY,
    MAX_DURATION,
    Clock,
    EventLog,
    IncludeError,
    may_see,
)

T = TypeVar("T")

ERRORS = {
    1: "function is not supported",
    2: "invalid request path",
    3: "invalid request method",
    4: "function is disabled",
    5: "function is licensed",
    7: "invalid connection type",
    8: "invalid authentication method",
    9: "authorisation required",
    10: "insufficient user privileges",
    11: "missing mandatory parameter",
    12: "invalid parameter value",
    13: "parameter data too big",
    14: "unspecified processing error",
    15: "no data available",
}
RESOLUTIONS = ((160, 120), (320, 240), (640, 480), (1280, 960))
SNAPSHOT_HISTORY = 30  # seconds of pictures the intercom keeps: time is within <-30, 0>
FRAME_RATE = 10  # pictures a second in that memory
MAX_BODY = 1 << 20
CONTROL = "/_emulator/"


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: bytes = b"application/json"
    headers: tuple[tuple[bytes, bytes], ...] = ()


def json_reply(
    data: object, status: int = 200, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> Reply:
    return Reply(status, json.dumps(data, indent=2).encode(), headers=headers)


def success(result: Mapping[str, object] | None = None) -> Reply:
    return json_reply({"success": True} if result is None else {"success": True, "result": result})


class ApiError(Exception):
    """A request the intercom refuses with one of the manual's error codes."""

    def __init__(self, code: int, param: str | None = None) -> None:
        super().__init__(f"{code} {ERRORS[code]} {param or ''}")
        self.code = code
        self.param = param

    def reply(self, status: int = 200, headers: tuple[tuple[bytes, bytes], ...] = ()) -> Reply:
        error: dict[str, object] = {"code": self.code, "description": ERRORS[self.code]}
        if self.param is not None:
            error["param"] = self.param
        return json_reply({"success": False, "error": error}, status, headers)


@dataclass(frozen=True)
class Fault:
    """What happens to one coming request instead of its normal reply."""

    kind: Literal["fail", "drop", "delay"]
    status: int = 500
    seconds: float = 0.0


class LogWriter:
    """What happens at a door, written into an intercom's log in the manual's event and
    parameter names; `append` is where each event goes."""

    def __init__(self) -> None:
        self._sessions = itertools.count(random.randrange(1, 1 << 20))

    def append(self, event: str, params: Mapping[str, object] | None = None) -> dict[str, object]:
        raise NotImplementedError

    def next_session(self) -> int:
        return next(self._sessions)

    def call_state(
        self,
        state: str,
        session: int,
        call: int = 1,
        peer: str = "sip:101@pbx",
        direction: str = "outgoing",
    ) -> dict[str, object]:
        """A CallStateChanged: connecting, ringing, connected or terminated."""
        params = {"direction": direction, "state": state, "peer": peer, "session": session}
        return self.append("CallStateChanged", {**params, "call": call})

    def call(
        self, peer: str = "sip:101@pbx", answered: bool = True, direction: str = "outgoing"
    ) -> tuple[int, int]:
        """A whole call (ringing, connected when answered, terminated); its session and call."""
        session, call = self.next_session(), 1
        self.call_state("ringing", session, call, peer, direction)
        if answered:
            self.call_state("connected", session, call, peer, direction)
        self.call_state("terminated", session, call, peer, direction)
        return session, call

    def _access(
        self, event: str, params: dict[str, object], valid: bool, user: str | None, uuid: str | None
    ) -> int:
        session = self.next_session()
        self.append(
            event, {"ap": 0, "session": session, "direction": "in", **params, "valid": valid}
        )
        if valid and user is not None:
            self.user_authenticated(session, user, uuid)
        return session

    def card(
        self, uid: str, valid: bool = True, user: str | None = None, uuid: str | None = None
    ) -> int:
        """A card tapped (CardEntered), followed by UserAuthenticated when the intercom knows
        its user; the access session."""
        params: dict[str, object] = {"reader": "internal", "uid": uid}
        if uuid is not None:
            params["uuid"] = uuid
        return self._access("CardEntered", params, valid, user, uuid)

    def fingerprint(self, uuid: str | None, valid: bool = True, user: str | None = None) -> int:
        """A finger on the reader (FingerEntered); `uuid` is the user it matched, if any."""
        params: dict[str, object] = {} if uuid is None else {"uuid": uuid}
        return self._access("FingerEntered", params, valid, user, uuid)

    def mobile_key(
        self, authid: str, valid: bool = True, user: str | None = None, uuid: str | None = None
    ) -> int:
        """A Bluetooth Mobile Key authentication (MobKeyEntered)."""
        params: dict[str, object] = {"authid": authid}
        if uuid is not None:
            params["uuid"] = uuid
        return self._access("MobKeyEntered", params, valid, user, uuid)

    def user_authenticated(
        self, session: int, name: str, uuid: str | None = None
    ) -> dict[str, object]:
        params: dict[str, object] = {"ap": 0, "session": session, "name": name}
        if uuid is not None:
            params["uuid"] = uuid
        return self.append("UserAuthenticated", params)

    def registration(self, state: str = "unregistered", account: int = 1) -> dict[str, object]:
        """A RegistrationStateChanged of SIP account 1 or 2."""
        return self.append("RegistrationStateChanged", {"sipAccount": account, "state": state})

    def startup(self) -> dict[str, object]:
        return self.append("DeviceState", {"state": "startup"})

    def tamper(self, state: str = "in") -> dict[str, object]:
        """The tamper switch opened (in) or closed again (out)."""
        return self.append("TamperSwitchActivated", {"state": state})


class Intercom(LogWriter):
    """One emulated intercom: its log, accounts, clock and camera, served on a loopback port."""

    def __init__(
        self,
        *,
        serial: str = "54-0880-2424",
        device_name: str = "2N IP Verso",
        user: str = "api",
        password: str = "api-password",
        privileges: frozenset[str] = PRIVILEGES,
        accounts: list[Account] | None = None,
        auth: AuthMethods = "digest",
        clock: Clock | None = None,
        up_time: float = 0.0,
        tz_shift: int = 0,
        history: int = HISTORY,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__()
        self.serial = serial
        self.device_name = device_name
        self.clock = clock or Clock()
        self.auth = Authenticator(accounts or [Account(user, password, privileges)], auth)
        self.log = EventLog(self.clock, self.clock.now() - up_time, tz_shift, history)
        self.host, self.port = host, port
        self.reply_delay = 0.0
        self.requests: Counter[str] = Counter()  # API requests by path
        self._faults: deque[Fault] = deque()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._routes: dict[str, Callable[[Account, dict[str, str]], Awaitable[Reply]]] = {
            "/api/system/info": self._system_info,
            "/api/system/status": self._system_status,
            "/api/log/caps": self._log_caps,
            "/api/log/subscribe": self._log_subscribe,
            "/api/log/pull": self._log_pull,
            "/api/log/unsubscribe": self._log_unsubscribe,
            "/api/camera/caps": self._camera_caps,
            "/api/camera/snapshot": self._camera_snapshot,
        }
        self.log.append("DeviceState", {"state": "startup"}, at=self.log.boot_at)

    # -- running --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Listen (again, on the same port after a stop)."""
        self._server = await asyncio.start_server(self._connection, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and cut every open connection (the intercom is off)."""
        if self._server is not None:
            self._server.close()
            self._abort_connections()
            for task in self._tasks:
                task.cancel()  # long polls do not read, so they miss the cut
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Intercom:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _abort_connections(self, keep: asyncio.StreamWriter | None = None) -> None:
        for writer in list(self._writers):
            if writer is not keep:
                writer.transport.abort()

    # -- what tests do to it --------------------------------------------------------------

    def append(self, event: str, params: Mapping[str, object] | None = None) -> dict[str, object]:
        """Record an event now; the record as /api/log/pull shows it."""
        return self.log.append(event, params or {}).to_json()

    def restart(self, keep: asyncio.StreamWriter | None = None) -> None:
        """A reboot: open connections are cut, channels and history are lost, ids start again
        at 1, upTime at 0 (so utcTime − upTime changes), and the new log opens with a
        DeviceState startup."""
        self._abort_connections(keep)
        self.log.restart(self.clock.now())
        self.auth.forget_nonces()
        self.startup()

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        """The next `count` requests get an HTTP error instead of their reply."""
        self._faults.extend([Fault("fail", status=status)] * count)

    def drop_next(self, count: int = 1) -> None:
        """The next `count` requests see their connection closed without a reply."""
        self._faults.extend([Fault("drop")] * count)

    def delay_next(self, seconds: float, count: int = 1) -> None:
        """The next `count` requests are answered `seconds` late."""
        self._faults.extend([Fault("delay", seconds=seconds)] * count)

    def advance(self, seconds: float) -> None:
        """Move the intercom's clock."""
        self.clock.advance(seconds)

    # -- HTTP -----------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        connection = h11.Connection(h11.SERVER)
        try:
            while (request := await _read_request(connection, reader)) is not None:
                reply = await self._reply(*request, writer)
                if reply is None:
                    break  # dropped without a reply
                await _send(connection, writer, reply)
                if connection.our_state is h11.MUST_CLOSE:
                    break
                connection.start_next_cycle()
        except (ConnectionError, h11.ProtocolError):
            pass
        except asyncio.CancelledError:
            pass  # stopped: asyncio's stream callback would log a cancelled handler as an error
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()

    async def _reply(
        self, request: h11.Request, body: bytes, writer: asyncio.StreamWriter
    ) -> Reply | None:
        method = request.method.decode()
        target = request.target.decode("ascii", "replace")
        path, _, query = target.partition("?")
        if path.startswith(CONTROL):
            return self._control(method, path, body, writer)
        fault = self._faults.popleft() if self._faults else None
        if fault is not None and fault.kind == "drop":
            return None
        delay = self.reply_delay + (fault.seconds if fault is not None else 0.0)
        if delay:
            await asyncio.sleep(delay)
        if fault is not None and fault.kind == "fail":
            phrase = http.HTTPStatus(fault.status).phrase.encode()
            return Reply(fault.status, phrase, b"text/plain")
        self.requests[path] += 1
        headers = dict(request.headers)
        try:
            return await self._api(method, target, path, query, headers, body)
        except ApiError as error:
            return error.reply()

    async def _api(
        self,
        method: str,
        target: str,
        path: str,
        query: str,
        headers: dict[bytes, bytes],
        body: bytes,
    ) -> Reply:
        authorization = headers.get(b"authorization")
        account = self.auth.check(method, target, authorization.decode() if authorization else None)
        if isinstance(account, Refused):
            return ApiError(account.code).reply(401, tuple(self.auth.challenges(account.stale)))
        handler = self._routes.get(path)
        if handler is None:
            raise ApiError(2)
        if method not in ("GET", "POST"):
            raise ApiError(3)
        params = dict(parse_qsl(query, keep_blank_values=True))
        if method == "POST" and headers.get(b"content-type", b"").startswith(
            b"application/x-www-form-urlencoded"
        ):
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        return await handler(account, params)

    # -- the API functions ----------------------------------------------------------------

    async def _system_info(self, account: Account, params: dict[str, str]) -> Reply:
        return success(
            {
                "variant": "2N IP Verso",
                "serialNumber": self.serial,
                "hwVersion": "535v1",
                "swVersion": "2.43.0.60.2",
                "buildType": "release",
                "deviceName": self.device_name,
            }
        )

    async def _system_status(self, account: Account, params: dict[str, str]) -> Reply:
        return success({"systemTime": math.floor(self.clock.now()), "upTime": self.log.up_time()})

    async def _log_caps(self, account: Account, params: dict[str, str]) -> Reply:
        return success({"events": [name for name in EVENTS if may_see(account.privileges, name)]})

    async def _log_subscribe(self, account: Account, params: dict[str, str]) -> Reply:
        names = None
        if params.get("filter"):
            names = frozenset(name.strip() for name in params["filter"].split(","))
            if not names <= EVENTS.keys():
                raise ApiError(12, "filter")
        duration = _uint(params, "duration", DEFAULT_DURATION)
        if not 1 <= duration <= MAX_DURATION:
            raise ApiError(12, "duration")
        try:
            channel = self.log.subscribe(
                params.get("include") or "new", names, account.privileges, duration
            )
        except IncludeError:
            raise ApiError(12, "include") from None
        return success({"id": channel.id})

    async def _log_pull(self, account: Account, params: dict[str, str]) -> Reply:
        channel = self.log.channel(_uint(params, "id", None))
        if channel is None:
            raise ApiError(12, "id")
        events = await self.log.pull(channel, _uint(params, "timeout", 0))
        return success({"events": [event.to_json() for event in events]})

    async def _log_unsubscribe(self, account: Account, params: dict[str, str]) -> Reply:
        if not self.log.unsubscribe(_uint(params, "id", None)):
            raise ApiError(12, "id")
        return success()

    async def _camera_caps(self, account: Account, params: dict[str, str]) -> Reply:
        return success(
            {
                "jpegResolution": [{"width": w, "height": h} for w, h in RESOLUTIONS],
                "sources": [{"source": "internal"}, {"source": "external"}],
            }
        )

    async def _camera_snapshot(self, account: Account, params: dict[str, str]) -> Reply:
        if "camera" not in account.privileges:
            raise ApiError(10)
        width, height = _uint(params, "width", None), _uint(params, "height", None)
        if (width, height) not in RESOLUTIONS:
            raise ApiError(12, "width")
        if params.get("source", "internal") not in ("internal", "external"):
            raise ApiError(12, "source")
        if "fps" in params:
            raise ApiError(12, "fps")  # no server-push stream here
        back = _int(params, "time", 0)
        if not -SNAPSHOT_HISTORY <= back <= 0:
            raise ApiError(12, "time")
        moment = math.floor((self.clock.now() + back) * FRAME_RATE) / FRAME_RATE
        jpeg = await asyncio.to_thread(jpeg_frame, moment, width, height)
        return Reply(200, jpeg, b"image/jpeg")

    # -- control from another process -----------------------------------------------------

    def _control(self, method: str, path: str, body: bytes, writer: asyncio.StreamWriter) -> Reply:
        try:
            data = json.loads(body) if body else {}
            if not isinstance(data, dict):
                raise ValueError("the body must be a JSON object")
            name = path.removeprefix(CONTROL)
            if method == "GET" and name == "state":
                return json_reply(self.state())
            if method != "POST":
                raise ValueError(f"{method} {path} is not a control request")
            if name == "append":
                return json_reply({"event": self.append(str(data["event"]), data.get("params"))})
            if name == "restart":
                self.restart(keep=writer)
            elif name == "fault":
                self._control_fault(data)
            elif name == "advance":
                self.advance(float(data["seconds"]))
            else:
                raise ValueError(f"{path} is not a control request")
            return json_reply(self.state())
        except (KeyError, TypeError, ValueError) as error:
            return json_reply({"error": f"{type(error).__name__}: {error}"}, 400)

    def _control_fault(self, data: dict[str, Any]) -> None:
        count = int(data.get("count", 1))
        if data["kind"] == "fail":
            self.fail_next(count, int(data.get("status", 500)))
        elif data["kind"] == "drop":
            self.drop_next(count)
        elif data["kind"] == "delay":
            self.delay_next(float(data["seconds"]), count)
        else:
            raise ValueError(f"{data['kind']!r} is not a fault: fail, drop or delay")

    def state(self) -> dict[str, object]:
        """What a test may want to know from outside: identity, clock, log and traffic."""
        return {
            "serialNumber": self.serial,
            "utcTime": math.floor(self.clock.now()),
            "upTime": self.log.up_time(),
            "lastId": self.log.last_id,
            "channels": len(self.log.channels),
            "requests": dict(self.requests),
        }


def _uint(params: dict[str, str], name: str, default: int | None) -> int:
    raw = params.get(name, "")
    if raw == "":
        if default is None:
            raise ApiError(11, name)
        return default
    if not raw.isdigit() or int(raw) >= 1 << 32:
        raise ApiError(12, name)
    return int(raw)


def _int(params: dict[str, str], name: str, default: int) -> int:
    raw = params.get(name, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(12, name) from None


async def _read_request(
    connection: h11.Connection, reader: asyncio.StreamReader
) -> tuple[h11.Request, bytes] | None:
    """The next request on a connection with its body, or None once the client closed it."""
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(await reader.read(65536))
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY:
                return None
        elif isinstance(event, h11.EndOfMessage) and request is not None:
            return request, bytes(body)
        else:
            return None


async def _send(connection: h11.Connection, writer: asyncio.StreamWriter, reply: Reply) -> None:
    headers = [
        (b"Content-Type", reply.content_type),
        (b"Content-Length", str(len(reply.body)).encode()),
        *reply.headers,
    ]
    reason = http.HTTPStatus(reply.status).phrase.encode()
    data = connection.send(h11.Response(status_code=reply.status, headers=headers, reason=reason))
    if reply.body:
        data += connection.send(h11.Data(data=reply.body)) or b""
    data += connection.send(h11.EndOfMessage()) or b""
    writer.write(data or b"")
    await writer.drain()


class IntercomThread(LogWriter):
    """An `Intercom` served by an event loop in a thread of its own, for tests that are not
    async: `with IntercomThread(serial=...) as intercom: intercom.card("0A1B2C3D")`."""

    def __init__(self, **options: Any) -> None:
        super().__init__()
        self._options = options
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._intercom: Intercom | None = None

    def __enter__(self) -> IntercomThread:
        self._thread.start()
        self._intercom = self._run(self._started())
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._run(self.intercom.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    async def _started(self) -> Intercom:
        intercom = Intercom(**self._options)
        await intercom.start()
        return intercom

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=60)

    def _call(self, function: Callable[..., T], *args: Any) -> T:
        async def call() -> T:
            return function(*args)

        return self._run(call())

    @property
    def intercom(self) -> Intercom:
        assert self._intercom is not None, "not started"
        return self._intercom

    @property
    def url(self) -> str:
        return self.intercom.url

    @property
    def serial(self) -> str:
        return self.intercom.serial

    def append(self, event: str, params: Mapping[str, object] | None = None) -> dict[str, object]:
        return self._call(self.intercom.append, event, params)

    def restart(self) -> None:
        self._call(self.intercom.restart)

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        self._call(self.intercom.fail_next, count, status)

    def drop_next(self, count: int = 1) -> None:
        self._call(self.intercom.drop_next, count)

    def delay_next(self, seconds: float, count: int = 1) -> None:
        self._call(self.intercom.delay_next, seconds, count)

    def advance(self, seconds: float) -> None:
        self._call(self.intercom.advance, seconds)

    def state(self) -> dict[str, object]:
        return self._call(self.intercom.state)


class RemoteIntercom(LogWriter):
    """An emulator running in another process, driven through its `/_emulator/` requests."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self._client = httpx.Client(base_url=url + CONTROL.rstrip("/"), timeout=30)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RemoteIntercom:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _post(self, name: str, data: Mapping[str, object]) -> dict[str, Any]:
        response = self._client.post("/" + name, json=dict(data))
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def append(self, event: str, params: Mapping[str, object] | None = None) -> dict[str, object]:
        event_json: dict[str, object] = self._post(
            "append", {"event": event, "params": params or {}}
        )["event"]
        return event_json

    def restart(self) -> None:
        self._post("restart", {})

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        self._post("fault", {"kind": "fail", "count": count, "status": status})

    def drop_next(self, count: int = 1) -> None:
        self._post("fault", {"kind": "drop", "count": count})

    def delay_next(self, seconds: float, count: int = 1) -> None:
        self._post("fault", {"kind": "delay", "count": count, "seconds": seconds})

    def advance(self, seconds: float) -> None:
        self._post("advance", {"seconds": seconds})

    def state(self) -> dict[str, Any]:
        response = self._client.get("/state")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.intercom2n.emulator",
        description="Emulated 2N IP intercoms on loopback ports, until SIGTERM or Ctrl-C.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=0, help="port of a single intercom (0: any free)"
    )
    parser.add_argument("--count", type=int, default=1, help="how many intercoms")
    parser.add_argument("--first-port", type=int, default=0, help="port of the first of --count")
    parser.add_argument("--user", default="api")
    parser.add_argument("--password", default="api-password")
    parser.add_argument("--auth", choices=["digest", "basic", "both", "none"], default="digest")
    parser.add_argument(
        "--serial", default="54-0880-2424", help="serial (a suffix -N with --count)"
    )
    parser.add_argument("--up-time", type=float, default=0.0, help="seconds up at the start")
    return parser.parse_args(argv)


async def serve(arguments: argparse.Namespace) -> None:
    """Run the intercoms the arguments ask for; print `URL SERIAL` of each once it listens."""
    intercoms = []
    for index in range(arguments.count):
        many = arguments.count > 1
        port = (
            (arguments.first_port + index if arguments.first_port else 0)
            if many
            else arguments.port
        )
        intercoms.append(
            Intercom(
                serial=f"{arguments.serial}-{index + 1}" if many else arguments.serial,
                device_name=f"Intercom {index + 1}" if many else "2N IP Verso",
                user=arguments.user,
                password=arguments.password,
                auth=arguments.auth,
                up_time=arguments.up_time,
                host=arguments.host,
                port=port,
            )
        )
    for intercom in intercoms:
        await intercom.start()
        print(intercom.url, intercom.serial, flush=True)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    await stopped.wait()
    for intercom in intercoms:
        await intercom.stop()


def main(argv: list[str] | None = None) -> None:
    arguments = _arguments(argv)
    # Each intercom listens on a socket and holds its clients' long polls open.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(arguments))


if __name__ == "__main__":
    main()
