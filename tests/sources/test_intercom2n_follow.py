"""Following a 2N intercom (SPEC 11) against the emulated intercom over real sockets: each
mapped event reaches the pipeline once with its idempotency id, none before the first
subscription; after a 500, a dropped connection, the intercom's restart or doormail's own, the
follower subscribes again and nothing is taken twice or skipped; the intercom names a user the
list does not know; one process at a time follows a device (leases)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import time
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import select

from doormail.app import Service, build_service
from doormail.devices.model import parse_device
from doormail.settings import apply_patch
from doormail.sources.intercoms import Intercoms
from doormail.store import tables
from doormail.store.leases import Leases, SourceStates
from doormail.users.model import User
from tests.camera.pattern import moment_of
from tests.intercom2n.emulator import Intercom

USER, PASSWORD = "api", "api-password"


@pytest.fixture
async def intercom() -> AsyncIterator[Intercom]:
    async with Intercom(user=USER, password=PASSWORD, up_time=1000, auth="both") as running:
        yield running


def with_device(service: Service, intercom: Intercom) -> Service:
    service.settings.save(
        apply_patch(
            service.settings.load(),
            {"email_on_event": {"to": "desk@example.com", "tamper": {"enabled": True}}},
        )
    )
    source = {"kind": "2n", "url": intercom.url, "username": USER, "password": PASSWORD}
    service.devices.create(parse_device({"id": "door-1", "name": "Door", "source": source}))
    return service


def follower(service: Service, holder: str = "me", seconds: float = 20.0) -> Intercoms:
    return Intercoms(
        devices=service.devices.all,
        leases=Leases(service.engine, holder, seconds),
        states=SourceStates(service.engine),
        submit=service.intake.submit,
        knows=lambda event: False,
        every=0.1,
    )


def taken(service: Service) -> list[tuple[str, str]]:
    with service.engine.connect() as connection:
        rows = connection.execute(
            select(tables.events.c.id, tables.events.c.type).order_by(tables.events.c.received_at)
        ).all()
    return [(row.id, row.type) for row in rows]


async def until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def following(service: Service, intercoms: Intercoms) -> asyncio.Task[None]:
    task = asyncio.create_task(intercoms.run())
    device = service.devices.by_id("door-1")
    assert device is not None
    await until(lambda: intercoms.status(device).state == "connected")
    return task


async def stopped(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_each_mapped_event_is_taken_once_with_its_id(
    service: Service, intercom: Intercom
) -> None:
    with_device(service, intercom)
    intercom.tamper()  # before the first subscription: no mail
    intercoms = follower(service)
    task = await following(service, intercoms)
    intercom.tamper()
    intercom.call(answered=False)
    intercom.card("12345678", valid=False)
    intercom.registration()
    device = service.devices.by_id("door-1")
    assert device is not None
    await until(lambda: intercoms.status(device).events_received == 5)  # once committed
    await stopped(task)
    types = [kind for _, kind in taken(service)]
    assert types == [
        "tamper.activated",
        "call.ringing",
        "call.ended",
        "access",
        "sip.registration_lost",
    ]
    boot = intercom.log.boot_at
    ids = [event_id for event_id, _ in taken(service)]
    assert all(i.startswith(f"2n:{intercom.serial}:") for i in ids)
    assert abs(int(ids[0].split(":")[2]) - boot) <= 2


async def test_faults_and_the_intercoms_restart_lose_nothing_and_repeat_nothing(
    service: Service, intercom: Intercom
) -> None:
    with_device(service, intercom)
    task = await following(service, follower(service))
    intercom.tamper()
    await until(lambda: len(taken(service)) == 1)
    intercom.fail_next(2)
    intercom.drop_next(1)
    intercom.tamper()
    await until(lambda: len(taken(service)) == 2)
    intercom.restart()  # cuts the long poll; its startup is logged as its first event
    intercom.tamper()
    await until(lambda: len(taken(service)) == 4, seconds=15)
    await stopped(task)
    assert [kind for _, kind in taken(service)] == [
        "tamper.activated",
        "tamper.activated",
        "device.rebooted",
        "tamper.activated",
    ]
    assert len({event_id for event_id, _ in taken(service)}) == 4


async def test_events_while_doormail_is_stopped_are_taken_when_it_is_back(
    data_dir: object, service: Service, intercom: Intercom
) -> None:
    with_device(service, intercom)
    task = await following(service, follower(service))
    intercom.tamper()
    await until(lambda: len(taken(service)) == 1)
    await stopped(task)
    intercom.tamper()
    intercom.registration()
    intercom.advance(5)
    again = build_service(service.paths)
    task = await following(again, follower(again, holder="me-again"))
    await until(lambda: len(taken(again)) == 3)
    intercom.tamper()
    await until(lambda: len(taken(again)) == 4)
    await asyncio.sleep(0.3)
    await stopped(task)
    kinds = [kind for _, kind in taken(again)]
    assert kinds == [
        "tamper.activated",
        "tamper.activated",
        "sip.registration_lost",
        "tamper.activated",
    ]


async def test_user_authenticated_names_a_card_the_users_list_does_not_know(
    service: Service, intercom: Intercom
) -> None:
    with_device(service, intercom)
    service.settings.save(
        apply_patch(
            service.settings.load(),
            {
                "smtp": {"enabled": True, "server": "127.0.0.1", "from": "door@example.org"},
                "email_on_access": {
                    "send": "all",
                    "default_to": "desk@example.com",
                    "subject": "Access by $User$",
                },
            },
        )
    )
    service.users.create(User(id="u-bob", name="Bob", email="bob@example.com", cards=("111111",)))
    intercoms = Intercoms(
        devices=service.devices.all,
        leases=Leases(service.engine, "me"),
        states=SourceStates(service.engine),
        submit=service.intake.submit,
        knows=lambda event: getattr(event, "auth_id", "") == "111111",
        every=0.1,
    )
    task = await following(service, intercoms)
    intercom.card("99999999", valid=True, user="Carol Intercom")
    intercom.card("111111", valid=True, user="Robert on the intercom")
    await until(lambda: len(service.outbox.page(limit=10).items) == 2)
    await stopped(task)
    subjects = sorted(item.subject for item in service.outbox.page(limit=10).items)
    assert any("Carol Intercom" in s for s in subjects), subjects
    assert not any("Robert on the intercom" in s for s in subjects), subjects


async def test_one_process_follows_a_device_and_another_takes_over_when_it_dies(
    service: Service, intercom: Intercom
) -> None:
    with_device(service, intercom)
    first = follower(service, holder="first", seconds=1.0)
    second = follower(service, holder="second", seconds=1.0)
    device = service.devices.by_id("door-1")
    assert device is not None
    await first.look()
    await second.look()
    await until(lambda: first.status(device).state == "connected")
    assert second.status(device).state == "off"
    # the first dies without giving its lease back: its follower stops, its lease runs out
    for followed in list(first._followed.values()):
        followed.task.cancel()
    await asyncio.sleep(1.2)
    await second.look()
    await until(lambda: second.status(device).state == "connected")
    intercom.tamper()
    await until(lambda: len(taken(service)) == 1)
    await second.stop()
    await first.stop()


async def test_an_access_mail_carries_the_intercoms_picture_of_the_cards_moment(
    service: Service, intercom: Intercom
) -> None:
    with_device(service, intercom)
    service.settings.save(
        apply_patch(
            service.settings.load(),
            {
                "smtp": {"enabled": True, "server": "127.0.0.1", "from": "door@example.org"},
                "email_on_access": {
                    "send": "all",
                    "default_to": "desk@example.com",
                    "snapshots": {"attach": True, "count": 1, "resolution": "640x480"},
                },
            },
        )
    )
    task = await following(service, follower(service))
    intercom.advance(3)
    card_at = intercom.clock.now()
    intercom.card("12345678", valid=False)
    await until(lambda: len(service.outbox.page(limit=10).items) == 1)
    await stopped(task)
    with service.engine.connect() as connection:
        data = connection.execute(select(tables.outbox_messages.c.message)).scalar_one()
    message = email.message_from_bytes(data, policy=email.policy.default)
    images = [
        part.get_content() for part in message.walk() if part.get_content_type() == "image/jpeg"
    ]
    assert len(images) == 1
    shown = moment_of(images[0], card_at)
    assert shown is not None and abs(shown - card_at) <= 1.0


async def test_a_deleted_device_is_left_and_its_lease_given_back(
    service: Service, intercom: Intercom
) -> None:
    with_device(service, intercom)
    intercoms = follower(service)
    task = await following(service, intercoms)
    leases = Leases(service.engine, "me")
    assert leases.holder_of("2n:door-1") == "me"
    service.devices.delete("door-1")
    await until(lambda: leases.holder_of("2n:door-1") is None)
    await until(lambda: not intercom.log.channels)  # it unsubscribed
    await stopped(task)


async def test_an_unknown_channel_error_12_subscribes_again_taking_nothing_twice(
    service: Service, intercom: Intercom
) -> None:
    with_device(service, intercom)
    task = await following(service, follower(service))
    intercom.tamper()
    await until(lambda: len(taken(service)) == 1)
    subscribed = intercom.requests["/api/log/subscribe"]
    for channel_id in list(intercom.log.channels):
        intercom.log.unsubscribe(channel_id)  # as if it expired: the next pull is error 12
    intercom.tamper()
    await until(lambda: len(taken(service)) == 2)
    await asyncio.sleep(0.3)
    await stopped(task)
    assert intercom.requests["/api/log/subscribe"] > subscribed
    assert [kind for _, kind in taken(service)] == ["tamper.activated"] * 2


async def test_a_malformed_record_is_counted_and_the_next_event_still_taken(
    service: Service, intercom: Intercom
) -> None:
    with_device(service, intercom)
    intercoms = Intercoms(
        devices=service.devices.all,
        leases=Leases(service.engine, "me"),
        states=SourceStates(service.engine),
        submit=service.intake.submit,
        knows=lambda event: False,
        metrics=service.metrics,
        every=0.1,
    )
    task = await following(service, intercoms)
    intercom.append("CardEntered", {"valid": True})  # no uid: not an access anyone can name
    intercom.tamper()
    await until(lambda: len(taken(service)) == 1)
    await stopped(task)
    assert (
        'doormail_source_rejected_total{source="door-1"} 1.0' in service.metrics.render().decode()
    )
