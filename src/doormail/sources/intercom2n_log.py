"""The 2N intercom's event log (`/api/log/pull`) mapped to doormail's events (SPEC 11), as plain
dicts in the shape of SPEC 4 that `doormail.events.parse_event` validates. Pure: no I/O, no
clock; the source that pulls the log feeds it and persists its small `LogState`.

The mapping:
- `CallStateChanged` with `direction` outgoing: `ringing` → `call.ringing`, `terminated` →
  `call.ended`, `answered` when a `connected` of the same call came between; `called` is the user
  part of `peer` (`sip:101@pbx` → `101`); `call_id` is the intercom's `{session}/{call}`.
  Incoming calls and the other states (`connecting`) give nothing.
- `CardEntered` → `access` card (`auth_id` its `uid`), `MobKeyEntered` → bluetooth (`authid`),
  `FingerEntered` → fingerprint (`auth_id` the `uuid` of the user the finger matched, or
  "unrecognised"); each with its `valid`.
- `RegistrationStateChanged` to `unregistered` → `sip.registration_lost` (`account` its
  `sipAccount`); `DeviceState` `startup` → `device.rebooted`; `TamperSwitchActivated` →
  `tamper.activated` (its `state` "out", the switch closing again, gives nothing).
- Every event's `at` is its record's `utcTime`, written with the intercom's `tzShift` (minutes
  east of UTC) as its offset, and its `device` the device the mapper was made for.

Naming the user (`UserAuthenticated`): the intercom logs a credential first (`CardEntered` with
its `session`) and then, once its access control has decided, `UserAuthenticated` (the user's
`name`) or `UserRejected` with the same `session`; with two factors (card and PIN) that comes
only after the second one. A valid credential with a session is therefore held until its
session's `UserAuthenticated` (which names the user) or `UserRejected` (which does not), or
until USER_WAIT_SECONDS of the intercom's time have passed: a later event's `utcTime` or the
source's call of `due` says so. The name travels beside the event (`Mapped.user_name`), since
only the source can ask the users list whether it knows the identifier (`Mapped.named`). An
invalid credential is not held: no one authenticates with it.

Idempotency: each mapped event's `id` is `2n:{serial}:{boot}:{log id}` of its own log record,
`boot` being `utcTime − upTime`. The two are whole seconds each, so one boot's values differ by
a second between events; so the boot of a record is the state's boot while it lies within
SAME_BOOT_SECONDS of it (then a record read twice gets the same id even if the intercom reported
its times a second apart), and a record further away starts a new boot: the state takes its
value, its log ids start again, the old boot's held credentials go out unnamed and its open
calls are forgotten (their end was never logged).
The state's boot is the first value seen of that boot, so the source must persist the state
together with (in the same transaction as) what the mapped events caused. Records with an id at
or below the state's last id of the same boot were taken before (a subscription with
`include=-t` reaching back) and give nothing."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

# The events the source subscribes to (`/api/log/subscribe?filter=`): those mapped, and the two
# that name or reject the user of a credential.
FILTER: tuple[str, ...] = (
    "CallStateChanged",
    "CardEntered",
    "FingerEntered",
    "MobKeyEntered",
    "UserAuthenticated",
    "UserRejected",
    "RegistrationStateChanged",
    "DeviceState",
    "TamperSwitchActivated",
)
SAME_BOOT_SECONDS = 2
USER_WAIT_SECONDS = 3
UNRECOGNISED_FINGER = "unrecognised"
# Calls that rang but never ended (the intercom lost them) and credentials that are held must
# not make the persisted state grow without end.
MAX_OPEN_CALLS = 64
MAX_HELD = 64
_ACCESS = {"CardEntered": ("card", "uid"), "MobKeyEntered": ("bluetooth", "authid")}


class MalformedEvent(ValueError):
    """A log record that cannot be mapped; the message says why."""


@dataclass(frozen=True)
class Mapped:
    """One doormail event from the log, with the record it came from."""

    log_id: int
    event: dict[str, Any]
    user_name: str | None = None  # from the credential's UserAuthenticated

    def named(self, known: bool) -> dict[str, Any]:
        """The event, naming the intercom's user (`user`) when the users list does not know
        the identifier (`known` false)."""
        if self.user_name is None or known:
            return self.event
        return {**self.event, "user": self.user_name}


@dataclass(frozen=True)
class Rejected:
    """A record of a mapped kind that was not mapped, and why."""

    log_id: int | None
    name: str
    reason: str


@dataclass
class Fed:
    """What a batch of records gave: events, rejected records, and whether the intercom
    restarted (a new boot) since the records fed before."""

    mapped: list[Mapped] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    new_boot: bool = False


@dataclass
class OpenCall:
    """An outgoing call that rang and has not ended yet."""

    called: str | None
    ringing_at: str | None = None
    answered: bool = False


@dataclass
class HeldAccess:
    """A valid credential waiting for its session's UserAuthenticated."""

    log_id: int
    utc_time: int
    session: str
    event: dict[str, Any]


@dataclass
class LogState:
    """What the mapping keeps between pulls: the boot and last log id taken (the cursor),
    the `utcTime` of that record, open calls and held credentials. JSON both ways."""

    boot: int | None = None
    last_id: int = 0
    last_utc: int | None = None
    calls: dict[str, OpenCall] = field(default_factory=dict)
    held: list[HeldAccess] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "boot": self.boot,
            "last_id": self.last_id,
            "last_utc": self.last_utc,
            "calls": {
                key: {"called": c.called, "ringing_at": c.ringing_at, "answered": c.answered}
                for key, c in self.calls.items()
            },
            "held": [
                {"log_id": h.log_id, "utc_time": h.utc_time, "session": h.session, "event": h.event}
                for h in self.held
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LogState:
        """The state persisted by `to_json`; ValueError when it is not one."""
        try:
            return cls(
                boot=_optional_int(data["boot"]),
                last_id=int(data["last_id"]),
                last_utc=_optional_int(data["last_utc"]),
                calls={
                    str(key): OpenCall(c["called"], c["ringing_at"], bool(c["answered"]))
                    for key, c in data["calls"].items()
                },
                held=[
                    HeldAccess(
                        int(h["log_id"]), int(h["utc_time"]), str(h["session"]), dict(h["event"])
                    )
                    for h in data["held"]
                ],
            )
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            raise ValueError(f"not a 2N log state: {error!r}") from None


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def include_for(state: LogState, intercom_now: float, intercom_restarted: bool) -> str:
    """The `include` of a new subscription: `all` after the intercom restarted (its first
    events are new), `new` when nothing was ever taken (no mail for events before the first
    subscription), else `-t` reaching back to the last record taken (`intercom_now` is the
    intercom's own time, e.g. `/api/system/status` `systemTime`)."""
    if intercom_restarted:
        return "all"
    if state.last_utc is None:
        return "new"
    return f"-{max(1, math.ceil(intercom_now - state.last_utc) + SAME_BOOT_SECONDS)}"


class LogMapper:
    """Maps the records of one intercom's log, in the order it gives them."""

    def __init__(
        self,
        serial: str,
        device: str,
        state: LogState | None = None,
        user_wait: float = USER_WAIT_SECONDS,
    ) -> None:
        self.serial = serial
        self.device = device
        self.state = state or LogState()
        self.user_wait = user_wait

    def feed(self, records: Iterable[object]) -> Fed:
        """Map a batch of records (the `events` of a pull)."""
        fed = Fed()
        for record in records:
            try:
                self._feed_one(record, fed)
            except MalformedEvent as error:
                fed.rejected.append(Rejected(_log_id(record), _name(record), str(error)))
        return fed

    def due(self, intercom_now: float) -> list[Mapped]:
        """The held credentials whose wait for a name is over by the intercom's time."""
        return self._release(lambda held: held.utc_time + self.user_wait <= intercom_now)

    def flush(self) -> list[Mapped]:
        """Every held credential, unnamed (e.g. when the source stops)."""
        return self._release(lambda held: True)

    # -- one record -----------------------------------------------------------------------

    def _feed_one(self, record: object, fed: Fed) -> None:
        if not isinstance(record, Mapping):
            raise MalformedEvent("a log record must be a JSON object")
        log_id = _int_field(record, "id", minimum=1)
        utc_time = _int_field(record, "utcTime", minimum=0)
        up_time = _int_field(record, "upTime", minimum=0)
        name = record.get("event")
        if not isinstance(name, str):
            raise MalformedEvent("event must be the event's name")
        params = record.get("params", {})
        if not isinstance(params, Mapping):
            raise MalformedEvent("params must be a JSON object")
        tz_shift = record.get("tzShift", 0)
        if not _is_int(tz_shift) or abs(tz_shift) > 24 * 60:
            raise MalformedEvent("tzShift must be whole minutes within a day")
        if not self._take(log_id, utc_time - up_time, fed):
            return
        self.state.last_id, self.state.last_utc = log_id, utc_time
        fed.mapped.extend(self._release(lambda held: held.utc_time + self.user_wait <= utc_time))
        at = datetime.fromtimestamp(utc_time, timezone(timedelta(minutes=tz_shift)))
        self._map(_Record(log_id, utc_time, at.isoformat(), name, params), fed)

    def _take(self, log_id: int, boot: int, fed: Fed) -> bool:
        """Whether the record is new, starting a new boot when it is of one."""
        state = self.state
        if state.boot is not None and abs(boot - state.boot) <= SAME_BOOT_SECONDS:
            return log_id > state.last_id
        if state.boot is not None:
            fed.new_boot = True
            fed.mapped.extend(self.flush())
        state.boot, state.last_id, state.calls = boot, 0, {}
        return True

    def _map(self, record: _Record, fed: Fed) -> None:
        if record.name == "CallStateChanged":
            self._call(record, fed)
        elif record.name in ("CardEntered", "MobKeyEntered", "FingerEntered"):
            self._access(record, fed)
        elif record.name in ("UserAuthenticated", "UserRejected"):
            self._user(record, fed)
        else:
            device_event = self._device_event(record)
            if device_event is not None:
                fed.mapped.append(device_event)

    def _device_event(self, record: _Record) -> Mapped | None:
        state = record.params.get("state")
        if record.name == "RegistrationStateChanged" and state == "unregistered":
            account = record.params.get("sipAccount")
            fields = {} if account is None else {"account": str(account)}
            return self._event(record, "sip.registration_lost", fields)
        if record.name == "DeviceState" and state == "startup":
            return self._event(record, "device.rebooted", {})
        if record.name == "TamperSwitchActivated" and state != "out":
            return self._event(record, "tamper.activated", {})
        return None

    def _event(self, record: _Record, kind: str, fields: dict[str, Any]) -> Mapped:
        event = {
            "type": kind,
            "id": f"2n:{self.serial}:{self.state.boot}:{record.log_id}",
            "at": record.at,
            "device": self.device,
            **fields,
        }
        return Mapped(record.log_id, event)

    # -- calls ----------------------------------------------------------------------------

    def _call(self, record: _Record, fed: Fed) -> None:
        params = record.params
        direction = params.get("direction")
        if direction not in ("outgoing", "incoming"):
            raise MalformedEvent("direction must be incoming or outgoing")
        if direction == "incoming":
            return
        key = f"{_identity(params, 'session')}/{_identity(params, 'call')}"
        called = called_number(params.get("peer"))
        state = params.get("state")
        calls = self.state.calls
        fields: dict[str, Any] = {"call_id": key, "direction": "outgoing"}
        if state == "ringing":
            calls[key] = OpenCall(called, record.at)
            while len(calls) > MAX_OPEN_CALLS:
                del calls[next(iter(calls))]
            fed.mapped.append(self._event(record, "call.ringing", fields | _called(called)))
        elif state == "connected":
            calls.setdefault(key, OpenCall(called)).answered = True
        elif state == "terminated":
            call = calls.pop(key, OpenCall(called))
            number = called or call.called
            if number is None:
                raise MalformedEvent("peer must name the called number (e.g. sip:101@pbx)")
            fields |= {"called": number, "answered": call.answered}
            if call.ringing_at is not None:
                fields["started_at"] = call.ringing_at
            fed.mapped.append(self._event(record, "call.ended", fields))

    # -- accesses -------------------------------------------------------------------------

    def _access(self, record: _Record, fed: Fed) -> None:
        params = record.params
        if record.name == "FingerEntered":
            auth_type, key = "fingerprint", "uuid"
            auth_id = params.get(key) or UNRECOGNISED_FINGER
        else:
            auth_type, key = _ACCESS[record.name]
            auth_id = params.get(key)
        if not isinstance(auth_id, str) or not auth_id.strip():
            raise MalformedEvent(f"{key} must name the credential")
        valid = params.get("valid")
        if valid is not None and not isinstance(valid, bool):
            raise MalformedEvent("valid must be true or false")
        fields: dict[str, Any] = {"auth_type": auth_type, "auth_id": auth_id}
        if valid is not None:
            fields["valid"] = valid
        mapped = self._event(record, "access", fields)
        session = params.get("session")
        if valid is not True or session is None:
            fed.mapped.append(mapped)
            return
        held = self.state.held
        held.append(HeldAccess(record.log_id, record.utc_time, str(session), mapped.event))
        if len(held) > MAX_HELD:
            fed.mapped.extend(self._release(lambda h: h is held[0]))

    def _user(self, record: _Record, fed: Fed) -> None:
        session = record.params.get("session")
        name = record.params.get("name") if record.name == "UserAuthenticated" else None
        if session is None:
            return
        user = name.strip() if isinstance(name, str) and name.strip() else None
        fed.mapped.extend(self._release(lambda h: h.session == str(session), user))

    def _release(
        self, which: Callable[[HeldAccess], bool], user_name: str | None = None
    ) -> list[Mapped]:
        released = [h for h in self.state.held if which(h)]
        self.state.held = [h for h in self.state.held if h not in released]
        return [Mapped(h.log_id, h.event, user_name) for h in released]


@dataclass(frozen=True)
class _Record:
    log_id: int
    utc_time: int
    at: str
    name: str
    params: Mapping[str, Any]


def called_number(peer: object) -> str | None:
    """The user part of a call's peer: `sip:101@pbx` → `101`, `sips:alice@x;transport=tls` →
    `alice`, `tel:+420123` → `+420123`; None when there is none."""
    if not isinstance(peer, str):
        return None
    text = peer.strip().strip("<>")
    scheme, colon, rest = text.partition(":")
    if colon and scheme.lower() in ("sip", "sips", "tel"):
        text = rest
    user = text.split("@", 1)[0].split(";", 1)[0].strip()
    return user or None


def _called(called: str | None) -> dict[str, Any]:
    return {} if called is None else {"called": called}


def _identity(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    if _is_int(value) or (isinstance(value, str) and value.strip()):
        return str(value).strip()
    raise MalformedEvent(f"{name} must identify the call")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_field(record: Mapping[str, Any], name: str, minimum: int) -> int:
    value = record.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise MalformedEvent(f"{name} must be a whole number of at least {minimum}")
    return value


def _log_id(record: object) -> int | None:
    value = record.get("id") if isinstance(record, Mapping) else None
    return value if _is_int(value) else None


def _name(record: object) -> str:
    value = record.get("event") if isinstance(record, Mapping) else None
    return value if isinstance(value, str) else "?"
