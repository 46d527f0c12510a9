"""The emulated intercom's event log (manual 5.10): the history of its last events, numbered from
1 after each start, and the subscription channels that /api/log/pull reads, each with a queue of
its own, its event filter, its account's privileges and its inactivity timeout."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

HISTORY = 10_000  # "the device keeps the event history queue (last 10000 events)"
PULL_BATCH = 128  # "Larger amounts of events are pulled in batches of 128 events."
DEFAULT_DURATION = 90  # seconds a channel lives without a pull
MAX_DURATION = 3600

# The events the emulated intercom records (part of the manual's table in 5.10.1) and the
# privilege an API account needs to see each (the table in 5.10.2; None: no privilege needed).
EVENTS: Mapping[str, str | None] = {
    "DeviceState": None,
    "AudioLoopTest": None,
    "MotionDetected": None,
    "NoiseDetected": None,
    "TamperSwitchActivated": None,
    "UnauthorizedDoorOpen": None,
    "DoorOpenTooLong": None,
    "DoorStateChanged": None,
    "LoginBlocked": None,
    "SilentAlarm": None,
    "KeyPressed": "keypad",
    "KeyReleased": "keypad",
    "CodeEntered": "keypad",
    "CardEntered": "uid",
    "CardHeld": "uid",
    "FingerEntered": "uid",
    "MobKeyEntered": "uid",
    "UserAuthenticated": "uid",
    "UserRejected": "uid",
    "InputChanged": "io",
    "OutputChanged": "io",
    "SwitchStateChanged": "io",
    "CallStateChanged": "call",
    "RegistrationStateChanged": "call",
}


class Clock:
    """The intercom's wall clock: the machine's time plus an offset that tests move."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass(frozen=True)
class LogEvent:
    """One record of the log, as /api/log/pull shows it."""

    id: int
    utc_time: int
    up_time: int
    tz_shift: int
    event: str
    params: Mapping[str, object]

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "tzShift": self.tz_shift,
            "utcTime": self.utc_time,
            "upTime": self.up_time,
            "event": self.event,
            "params": dict(self.params),
        }


def may_see(privileges: Iterable[str], event: str) -> bool:
    """Whether an account with these privileges sees the event in its channels and caps."""
    needed = EVENTS[event]
    return needed is None or needed in privileges


class Channel:
    """A subscription: the queue of the events it has not yet pulled."""

    def __init__(
        self,
        channel_id: int,
        names: frozenset[str] | None,
        privileges: frozenset[str],
        duration: int,
        now: float,
    ) -> None:
        self.id = channel_id
        self.names = names
        self.privileges = privileges
        self.duration = duration
        self.last_access = now
        self.pulling = 0
        self.queue: deque[LogEvent] = deque(maxlen=HISTORY)
        self._arrived = asyncio.Event()

    def wants(self, event: LogEvent) -> bool:
        return (self.names is None or event.event in self.names) and may_see(
            self.privileges, event.event
        )

    def offer(self, event: LogEvent) -> None:
        if self.wants(event):
            self.queue.append(event)
            self._arrived.set()

    def expired(self, now: float) -> bool:
        return self.pulling == 0 and now - self.last_access > self.duration

    async def pull(self, timeout: float) -> list[LogEvent]:
        """The next events (at most PULL_BATCH), waiting up to `timeout` seconds for one when
        the queue is empty and answering as soon as one arrives."""
        self.pulling += 1
        try:
            if not self.queue and timeout > 0:
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), timeout)
            return [self.queue.popleft() for _ in range(min(PULL_BATCH, len(self.queue)))]
        finally:
            self.pulling -= 1

    def close(self) -> None:
        """Closed (unsubscribed, expired, restarted): a waiting pull answers at once."""
        self.queue.clear()
        self._arrived.set()


class IncludeError(ValueError):
    """An `include` value that is neither new, all nor -t."""


class EventLog:
    """The history and the channels of one intercom, on its clock and since its boot."""

    def __init__(self, clock: Clock, boot_at: float, tz_shift: int = 0, history: int = HISTORY):
        self.clock = clock
        self.boot_at = boot_at
        self.tz_shift = tz_shift
        self.history: deque[LogEvent] = deque(maxlen=history)
        self.channels: dict[int, Channel] = {}
        self.last_id = 0

    def up_time(self) -> int:
        return math.floor(self.clock.now() - self.boot_at)

    def append(self, name: str, params: Mapping[str, object], at: float | None = None) -> LogEvent:
        """Record an event (now, or at the moment `at` of the past) and hand it to every
        channel that wants it."""
        if name not in EVENTS:
            raise ValueError(f"{name!r} is not an event of the emulated intercom")
        now = self.clock.now() if at is None else at
        self.last_id += 1
        event = LogEvent(
            id=self.last_id,
            utc_time=math.floor(now),
            up_time=math.floor(now - self.boot_at),
            tz_shift=self.tz_shift,
            event=name,
            params=dict(params),
        )
        self.history.append(event)
        self._drop_expired(self.clock.now())
        for channel in self.channels.values():
            channel.offer(event)
        return event

    def subscribe(
        self,
        include: str,
        names: frozenset[str] | None,
        privileges: frozenset[str],
        duration: int,
    ) -> Channel:
        """A new channel, its queue filled from the history as `include` says."""
        now = self.clock.now()
        channel_id = random.randrange(1, 1 << 32)
        while channel_id in self.channels:
            channel_id = random.randrange(1, 1 << 32)
        channel = Channel(channel_id, names, privileges, duration, now)
        for event in self._included(include, now):
            channel.offer(event)
        self.channels[channel_id] = channel
        return channel

    def _included(self, include: str, now: float) -> list[LogEvent]:
        if include == "new":
            return []
        if include == "all":
            return list(self.history)
        if include.startswith("-") and include[1:].isdigit():
            since = now - int(include[1:])
            return [event for event in self.history if event.utc_time >= math.floor(since)]
        raise IncludeError(include)

    def channel(self, channel_id: int) -> Channel | None:
        """The open channel with this id; None when there is none (never was, unsubscribed,
        expired, or lost in a restart)."""
        self._drop_expired(self.clock.now())
        return self.channels.get(channel_id)

    async def pull(self, channel: Channel, timeout: float) -> list[LogEvent]:
        """A pull on a channel, which counts as an access to it while it waits."""
        channel.last_access = self.clock.now()
        try:
            return await channel.pull(timeout)
        finally:
            channel.last_access = self.clock.now()

    def unsubscribe(self, channel_id: int) -> bool:
        channel = self.channels.pop(channel_id, None)
        if channel is None:
            return False
        channel.close()
        return True

    def restart(self, boot_at: float) -> None:
        """A new boot: no channel and no history survive, ids start again at 1."""
        for channel in self.channels.values():
            channel.close()
        self.channels.clear()
        self.history.clear()
        self.last_id = 0
        self.boot_at = boot_at

    def _drop_expired(self, now: float) -> None:
        for channel_id in [c.id for c in self.channels.values() if c.expired(now)]:
            self.channels.pop(channel_id).close()
