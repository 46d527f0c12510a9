"""The worker DKIM-signs each mail right before it is sent: the outbox keeps the unsigned
bytes, and a mail retried after the key was replaced goes out signed with the new key."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

import dkim
from doormail import dkimkey
from doormail.delivery.worker import DeliveryWorker, WorkerOptions
from doormail.outbox import Admin, Queue, RetryPolicy
from doormail.settings import Smtp
from doormail.store import open_engine, upgrade
from tests.outbox.helpers import queue_committed, unique_mail
from tests.scripted_smtp import Scripted, listening
from tests.test_dkimkey import published


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server() -> Iterator[tuple[Scripted, int]]:
    handler = Scripted()
    with listening(handler) as port:
        yield handler, port


def smtp_with_key(port: int, algorithm: dkimkey.Algorithm) -> Smtp:
    dkim_settings = {
        "enabled": True,
        "domain": "example.org",
        "selector": "door",
        "private_key": dkimkey.generate(algorithm),
    }
    return Smtp.model_validate(
        {
            "enabled": True,
            "server": "127.0.0.1",
            "port": port,
            "security": "none",
            "from": "door@example.org",
            "dkim": dkim_settings,
        }
    )


async def test_a_mail_retried_after_a_new_key_is_signed_with_the_new_key(
    tmp_path: Path, server: tuple[Scripted, int]
) -> None:
    handler, port = server
    clock = Clock()
    engine = open_engine(f"sqlite:///{tmp_path / 'outbox.sqlite3'}")
    upgrade(engine)
    queue = Queue(engine, policy=RetryPolicy(floor=1, ceiling=1, jitter=0), clock=clock)
    plain = unique_mail()
    signable = replace(plain, data=b"From: door@example.org\r\n" + plain.data)
    [item] = queue_committed(engine, queue, [signable], 3600, now=clock.now)
    settings = {"smtp": smtp_with_key(port, "rsa")}
    worker = DeliveryWorker(
        queue,
        lambda: settings["smtp"],
        lambda _smtp: ssl.create_default_context(),
        options=WorkerOptions(timeout=5, connection_idle=0),
    )
    old = dkimkey.dns_record(settings["smtp"].dkim)
    handler.data_replies.append("451 4.3.0 Try again later")
    await worker.drain()  # refused for now: signed with the old key, not kept
    settings["smtp"] = smtp_with_key(port, "ed25519")
    new = dkimkey.dns_record(settings["smtp"].dkim)
    clock.now += 2
    await worker.drain()

    [sent] = handler.received
    assert dkimkey.signature_tags(sent)["a"] == "ed25519-sha256"
    assert dkim.verify(sent, dnsfunc=published(new))
    assert not dkim.verify(sent, dnsfunc=published(old))
    stored = Admin(engine).message(item.id)
    assert b"DKIM-Signature" not in stored and sent.endswith(stored)
    engine.dispose()


async def test_a_mail_that_cannot_be_signed_fails_and_says_why(
    tmp_path: Path, server: tuple[Scripted, int]
) -> None:
    _, port = server
    engine = open_engine(f"sqlite:///{tmp_path / 'outbox.sqlite3'}")
    upgrade(engine)
    queue = Queue(engine)
    [item] = queue_committed(engine, queue, [unique_mail()], 3600)  # it has no From header
    smtp = smtp_with_key(port, "ed25519")
    worker = DeliveryWorker(queue, lambda: smtp, lambda _smtp: ssl.create_default_context())
    await worker.drain()
    failed = Admin(engine).get(item.id)
    assert failed.status == "failed"
    assert failed.last_error is not None and "From header field MUST be signed" in failed.last_error
    engine.dispose()


async def test_a_key_that_cannot_sign_fails_the_mail_and_says_what_to_fix(
    tmp_path: Path, server: tuple[Scripted, int]
) -> None:
    _, port = server
    engine = open_engine(f"sqlite:///{tmp_path / 'outbox.sqlite3'}")
    upgrade(engine)
    queue = Queue(engine)
    [item] = queue_committed(engine, queue, [unique_mail()], 3600)
    smtp = smtp_with_key(port, "rsa")
    # A key stored before validation existed, or written past it: never a crash of the worker.
    broken = smtp.model_copy(update={"dkim": smtp.dkim.model_copy(update={"private_key": "x"})})
    worker = DeliveryWorker(queue, lambda: broken, lambda _smtp: ssl.create_default_context())
    await worker.drain()
    failed = Admin(engine).get(item.id)
    assert failed.status == "failed"
    assert failed.last_error is not None and "could not be DKIM-signed" in failed.last_error
    engine.dispose()
