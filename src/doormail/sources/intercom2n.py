"""Following a 2N intercom's event log (SPEC 11): subscribe with a filter of the mapped events,
long-poll `/api/log/pull`, map the records (`intercom2n_log`), hand each event to the intake
and keep the log state once its events are committed. After any error it subscribes again with
a back-off that doubles up to BACKOFF_MAX; after the intercom's restart (a new boot, or error
12 on the channel) with `include=all`, after doormail's own restart with `include=-t` reaching
back to the last record taken. Following an idle intercom costs one open long-poll."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable

import httpx

from doormail.devices.model import DeviceModel, Intercom2N
from doormail.events import Event, EventError, parse_event
from doormail.sources.intercom2n_api import INVALID_PARAMETER, IntercomError, call, client_for
from doormail.sources.intercom2n_camera import IntercomCamera
from doormail.sources.intercom2n_log import FILTER, LogMapper, LogState, Mapped, include_for
from doormail.sources.status import SourceStatus

log = logging.getLogger("doormail.sources.2n")

# A long poll's `timeout`, spread over PULL_SECONDS ± PULL_SPREAD so that hundreds of idle
# intercoms followed together do not all come back at the same moment; the channel lives
# DURATION without a pull.
PULL_SECONDS = 25
PULL_SPREAD = 5
DURATION = 90
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
HINTS = {
    "reach": "Check the intercom's address and that it is on and reachable from doormail.",
    "tls": "Install a trusted certificate on the intercom, or turn verify_certificate off.",
    "auth": "Check the API account's username and password (Services > HTTP API > Account).",
    "api": "Check that the HTTP API's Logging service is enabled for this account.",
}


class ChannelLost(Exception):
    """The intercom no longer knows the channel: it restarted, or the channel expired."""


class Follower:
    """Follows one device's intercom until cancelled."""

    def __init__(
        self,
        device: DeviceModel,
        source: Intercom2N,
        *,
        submit: Callable[[Event], Awaitable[object]],
        knows: Callable[[Event], bool],
        load_state: Callable[[], str | None],
        save_state: Callable[[str], None],
        status: SourceStatus,
        camera: IntercomCamera,
    ) -> None:
        self.device = device
        self.source = source
        self._submit = submit
        self._knows = knows
        self._load_state = load_state
        self._save_state = save_state
        self.status = status
        self.camera = camera
        self._offset = 0.0  # the intercom's clock minus ours
        self._subscribed = False

    async def run(self) -> None:
        client = client_for(self.source, timeout=PULL_SECONDS + PULL_SPREAD + 10)
        self.camera.client = client
        delay, restarted = BACKOFF_FIRST, False
        try:
            while True:
                self.status.moved("connecting")
                self._subscribed = False
                restarted = await self._attempt(client, restarted)
                if self._subscribed:  # it worked for a while: start the back-off again
                    delay = BACKOFF_FIRST
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
        finally:
            self.status.moved("off")
            self.camera.client = None
            await client.aclose()

    async def _attempt(self, client: httpx.AsyncClient, restarted: bool) -> bool:
        """Subscribe and pull until something fails; whether the next subscription is to
        take the intercom's whole log (`include=all`: it restarted, or lost the channel)."""
        try:
            await self._follow(client, restarted)
        except ChannelLost:
            return True
        except IntercomError as error:
            self.status.failed(error.stage, str(error), HINTS[error.stage])
            log.warning("2N %s: %s", self.device.id, error)
        except Exception as error:  # a source must outlive any one intercom's surprise
            log.exception("2N %s: following failed", self.device.id)
            self.status.failed("api", f"{type(error).__name__}: {error}", HINTS["api"])
        return False

    async def _follow(self, client: httpx.AsyncClient, restarted: bool) -> None:
        info = await call(client, "/api/system/info")
        serial = str(info.get("serialNumber") or self.device.serial or self.device.id)
        state = await asyncio.to_thread(self._state)
        mapper = LogMapper(serial, self.device.id, state)
        status = await call(client, "/api/system/status")
        now = float(status.get("systemTime", time.time()))
        self._offset = now - time.time()
        self.camera.offset = self._offset
        boot = now - float(status.get("upTime", 0))
        if state.boot is not None and abs(boot - state.boot) > 2:
            restarted = True
        include = include_for(state, now, restarted)
        channel = (
            await call(
                client,
                "/api/log/subscribe",
                {"include": include, "filter": ",".join(FILTER), "duration": DURATION},
            )
        ).get("id")
        self.status.moved("connected")
        self._subscribed = True
        log.info("2N %s: subscribed (include=%s)", self.device.id, include)
        try:
            while True:
                await self._pull(client, mapper, channel)
        finally:
            await self._unsubscribe(client, channel)

    async def _pull(self, client: httpx.AsyncClient, mapper: LogMapper, channel: object) -> None:
        wait = PULL_SECONDS + random.randint(-PULL_SPREAD, PULL_SPREAD)
        if mapper.state.held:
            # a held credential waits for its name USER_WAIT_SECONDS of the intercom's time
            first = min(held.utc_time for held in mapper.state.held)
            wait = max(0, min(wait, int(first + mapper.user_wait - self._now()) + 1))
        try:
            params: dict[str, str | int] = {"id": str(channel), "timeout": wait}
            result = await call(client, "/api/log/pull", params, timeout=wait + 10)
        except IntercomError as error:
            if error.code == INVALID_PARAMETER:
                raise ChannelLost() from None
            raise
        records = result.get("events", [])
        fed = mapper.feed(records if isinstance(records, list) else [])
        for rejected in fed.rejected:
            self.status.refused()
            log.warning(
                "2N %s: log record %s %s left out: %s",
                self.device.id,
                rejected.log_id,
                rejected.name,
                rejected.reason,
            )
        await self._take([*fed.mapped, *mapper.due(self._now())])
        if fed.mapped or records:
            await asyncio.to_thread(self._save_state, json.dumps(mapper.state.to_json()))

    async def _take(self, mapped: list[Mapped]) -> None:
        for item in mapped:
            try:
                event = parse_event(item.event)
                if item.user_name is not None:
                    event = parse_event(item.named(self._knows(event)))
            except EventError as error:
                self.status.refused()
                log.warning("2N %s: record %s left out: %s", self.device.id, item.log_id, error)
                continue
            if event.type == "call.ringing":
                self.camera.ringing(event.at.timestamp())
            elif event.type == "call.ended":
                self.camera.ended()
            await self._submit(event)
            self.status.received(event.type)

    def _state(self) -> LogState:
        stored = self._load_state()
        if stored is None:
            return LogState()
        try:
            return LogState.from_json(json.loads(stored))
        except ValueError:
            log.warning("2N %s: the stored log state is unreadable; starting anew", self.device.id)
            return LogState()

    def _now(self) -> float:
        return time.time() + self._offset

    async def _unsubscribe(self, client: httpx.AsyncClient, channel: object) -> None:
        with contextlib.suppress(IntercomError, asyncio.CancelledError):
            await asyncio.shield(call(client, "/api/log/unsubscribe", {"id": str(channel)}, 2))
