"""The Prometheus collectors of one service, in a registry of its own (no globals): events
received, mails queued/sent/failed/expired, delivery latency, how long an event's commit holds
the database's write lock, and the outbox depth read at scrape time."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# From a mail that leaves at once (milliseconds) to one that waited out a long outage (a day).
LATENCY_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    21600.0,
    86400.0,
)

# An event's write transaction: well under a millisecond on a quiet disk, a few on a busy one.
LOCK_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.00125,
    0.0015,
    0.00175,
    0.002,
    0.0025,
    0.003,
    0.004,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.5,
    1.0,
)


class _OutboxDepth(Collector):
    """`doormail_outbox_depth{status=...}`, counted from the outbox when scraped, so it is right
    even with several processes sharing one outbox."""

    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "doormail_outbox_depth", "Outbox entries by status", labels=["status"]
        )
        for status, count in self._counts().items():
            family.add_metric([status], count)
        yield family


class ServerSeen(Protocol):
    """The SMTP server's state as the outbox keeps it (`outbox.server.ServerState`)."""

    @property
    def up(self) -> bool: ...

    def unreachable_seconds(self, now: float) -> float: ...


class _SmtpServer(Collector):
    """`doormail_smtp_up` and `doormail_smtp_unreachable_seconds`, read from the state every
    worker process shares when scraped."""

    def __init__(self, state: Callable[[], ServerSeen]) -> None:
        self._state = state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        state = self._state()
        yield GaugeMetricFamily(
            "doormail_smtp_up",
            "1 while the SMTP server answers, 0 while it is unreachable",
            value=1 if state.up else 0,
        )
        yield GaugeMetricFamily(
            "doormail_smtp_unreachable_seconds",
            "Seconds the SMTP server has been unreachable (0 while it answers)",
            value=state.unreachable_seconds(time.time()),
        )


class Metrics:
    """Every collector the service updates; `render()` is the body of `GET /metrics`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.events_received = Counter(
            "doormail_events_received",
            "Events received, by type",
            ["type"],
            registry=self.registry,
        )
        self.mails_queued = self._mail_counter("queued", "Mails put into the outbox")
        self.mails_sent = self._mail_counter("sent", "Mails the SMTP server accepted")
        self.mails_failed = self._mail_counter("failed", "Mails refused for good (5xx)")
        self.mails_expired = self._mail_counter("expired", "Mails whose deliver_in ran out")
        self.delivery_seconds = Histogram(
            "doormail_delivery_seconds",
            "Seconds from entering the outbox to being accepted by the SMTP server",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.commit_lock_seconds = Histogram(
            "doormail_commit_lock_seconds",
            "Seconds an event's commit held the database's write lock (its transaction, shared"
            " with the events committed together with it)",
            buckets=LOCK_BUCKETS,
            registry=self.registry,
        )
        self.source_up = Gauge(
            "doormail_source_up",
            "1 while an event source (a device's intercom, or mqtt) is connected, else 0",
            ["device"],
            registry=self.registry,
        )
        self.source_events = Counter(
            "doormail_source_events",
            "Events an event source gave, by device and doormail event type",
            ["device", "event"],
            registry=self.registry,
        )
        self.source_rejected = Counter(
            "doormail_source_rejected",
            "Messages or log records of an event source that were not a valid event",
            ["source"],
            registry=self.registry,
        )
        self._depth: _OutboxDepth | None = None

    def _mail_counter(self, what: str, documentation: str) -> Counter:
        return Counter(
            f"doormail_mails_{what}", f"{documentation}, by kind", ["kind"], registry=self.registry
        )

    def watch_outbox(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """Report the outbox depth from `counts` (e.g. `Outbox.counts`) on every scrape."""
        if self._depth is not None:
            self.registry.unregister(self._depth)
        self._depth = _OutboxDepth(counts)
        self.registry.register(self._depth)

    def watch_server(self, state: Callable[[], ServerSeen]) -> None:
        """Report the SMTP server's state from `state` (e.g. `ServerWatch.read`) on every scrape."""
        self.registry.register(_SmtpServer(state))

    def render(self) -> bytes:
        return generate_latest(self.registry)
