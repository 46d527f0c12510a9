"""The MQTT source (SPEC 11): subscribes to `sources.mqtt.topic` with QoS 1 and a persistent
session (a fixed client id, clean session off), so that events published while doormail is down
are delivered when it is back. Each message is one event of SPEC 4 as JSON, its `device`
defaulting to the topic level the filter's `+` matched. A message is acknowledged only once its
event is committed (or found bad): a crash in between has the broker deliver it again, and the
event's `id` makes that harmless. A bad message is logged with its reason and counted in
`doormail_source_rejected_total`, and never stops the subscription. Reconnects with a back-off
that doubles up to BACKOFF_MAX; follows changes of `sources.mqtt.*`; one process at a time
holds the subscription (a lease)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from doormail.events import Event, EventError, parse_event
from doormail.metrics import Metrics
from doormail.settings import Mqtt, Settings
from doormail.sources.status import SourceStatus
from doormail.store.leases import RENEW_EVERY, Leases

if TYPE_CHECKING:  # aiomqtt is loaded when MQTT is enabled, not by an idle service
    import aiomqtt

log = logging.getLogger("doormail.sources.mqtt")

LEASE = "mqtt"
SETTINGS_POLL = 1.0
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
MAX_MESSAGE_BYTES = 256 * 1024
HINT = "Check sources.mqtt.url, the broker's username and password, and that it is running."


class BadMessage(ValueError):
    """A message that is not a valid event; the text says why."""


class BrokerError(ConnectionError):
    """The broker could not be reached, or the connection to it broke."""


class Reconnect(Exception):
    """The settings changed, or the lease was lost: connect again (or not at all)."""


def client_id(mqtt: Mqtt) -> str:
    """`sources.mqtt.client_id`, or `doormail-` and the host name."""
    return mqtt.client_id or f"doormail-{socket.gethostname()}"


def device_of(topic_filter: str, topic: str) -> str | None:
    """The topic level that the filter's first `+` matched (`doormail/+/events`)."""
    levels = topic_filter.split("/")
    if "+" not in levels:
        return None
    parts = topic.split("/")
    index = levels.index("+")
    return parts[index] if index < len(parts) and parts[index] else None


def event_of(payload: bytes, device: str | None) -> Event:
    """The event a message carries; BadMessage says why it is not one."""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise BadMessage(f"the message is larger than {MAX_MESSAGE_BYTES} bytes")
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise BadMessage(f"not JSON: {error}") from None
    if not isinstance(data, dict):
        raise BadMessage("the message must be one event, a JSON object")
    if device is not None:
        data.setdefault("device", device)
    try:
        return parse_event(data)
    except EventError as error:
        raise BadMessage(str(error)) from None


class MqttSource:
    """Follows the MQTT subscription while `sources.mqtt.enabled` (`run`)."""

    def __init__(
        self,
        *,
        load_settings: Callable[[], Settings],
        submit: Callable[[Event], Awaitable[object]],
        leases: Leases,
        metrics: Metrics | None = None,
    ) -> None:
        self._load_settings = load_settings
        self._submit = submit
        self._leases = leases
        self.status = SourceStatus("mqtt", "mqtt", metrics)
        self.rejected = 0
        self._was_subscribed = False

    async def run(self) -> None:
        delay = BACKOFF_FIRST
        try:
            while True:
                mqtt = (await asyncio.to_thread(self._load_settings)).sources.mqtt
                if not mqtt.enabled or not await asyncio.to_thread(self._leases.take, LEASE):
                    self.status.moved("off")
                    await asyncio.sleep(SETTINGS_POLL if mqtt.enabled is False else RENEW_EVERY)
                    continue
                self._was_subscribed = False
                try:
                    await self._follow(mqtt)
                except Reconnect:
                    delay = BACKOFF_FIRST
                    continue
                except BrokerError as error:
                    self.status.failed("connect", str(error), HINT)
                    log.warning("mqtt: %s; connecting again in %.1f s", error, delay)
                except Exception as error:  # the subscription must outlive any surprise
                    log.exception("mqtt: following failed")
                    self.status.failed("event", f"{type(error).__name__}: {error}", HINT)
                if self._was_subscribed:  # it worked for a while: start the back-off again
                    delay = BACKOFF_FIRST
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
        finally:
            self.status.moved("off")
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._leases.release, LEASE)

    async def _follow(self, mqtt: Mqtt) -> None:
        import aiomqtt

        try:
            await self._subscribed(mqtt)
        except aiomqtt.MqttError as error:
            raise BrokerError(str(error)) from None

    async def _subscribed(self, mqtt: Mqtt) -> None:
        self.status.moved("connecting")
        client = _client(mqtt)
        # paho acknowledges a QoS 1 message as it arrives unless told not to, and a persistent
        # session's messages may come with the CONNACK: acknowledge each only once its event is
        # committed, so that a crash in between loses nothing.
        client._client.manual_ack_set(True)
        async with client:
            await client.subscribe(mqtt.topic, qos=1)
            self.status.moved("connected")
            self._was_subscribed = True
            log.info("mqtt: subscribed to %s as %s", mqtt.topic, client_id(mqtt))
            reader = asyncio.create_task(self._messages(mqtt, client))
            watch = asyncio.create_task(self._watch(mqtt))
            done, pending = await asyncio.wait({reader, watch}, return_when="FIRST_COMPLETED")
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                task.result()

    async def _messages(self, mqtt: Mqtt, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            # a reconnect waits for the message in hand: taken and acknowledged, or neither
            await asyncio.shield(self._take_and_ack(mqtt, client, message))

    async def _take_and_ack(
        self, mqtt: Mqtt, client: aiomqtt.Client, message: aiomqtt.Message
    ) -> None:
        await self._take(mqtt, message)
        client._client.ack(message.mid, message.qos)

    async def _take(self, mqtt: Mqtt, message: aiomqtt.Message) -> None:
        payload = message.payload
        raw = payload if isinstance(payload, bytes) else str(payload).encode()
        try:
            event = event_of(raw, device_of(mqtt.topic, str(message.topic)))
            await self._submit(event)
        except (BadMessage, EventError) as error:
            self.rejected += 1
            self.status.refused()
            log.warning("mqtt: a message on %s is not an event: %s", message.topic, error)
            return
        self.status.received(event.type, event.device)

    async def _watch(self, mqtt: Mqtt) -> None:
        """Ends (raising Reconnect) when `sources.mqtt.*` changed or the lease was lost."""
        waited = 0.0
        while True:
            await asyncio.sleep(SETTINGS_POLL)
            waited += SETTINGS_POLL
            if (await asyncio.to_thread(self._load_settings)).sources.mqtt != mqtt:
                raise Reconnect()
            if waited >= RENEW_EVERY:
                waited = 0.0
                if not await asyncio.to_thread(self._leases.take, LEASE):
                    raise Reconnect()


def _client(mqtt: Mqtt) -> aiomqtt.Client:
    import aiomqtt

    url = urlsplit(mqtt.url)
    secure = url.scheme == "mqtts"
    options: dict[str, Any] = {}
    if secure:
        options["tls_context"] = ssl.create_default_context()
    return aiomqtt.Client(
        url.hostname or "127.0.0.1",
        url.port or (8883 if secure else 1883),
        username=mqtt.username or None,
        password=mqtt.password or None,
        identifier=client_id(mqtt),
        clean_session=False,
        timeout=10,
        **options,
    )
