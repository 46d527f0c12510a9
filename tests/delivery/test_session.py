"""The SMTP session against an in-process aiosmtpd server with scripted replies: how 4xx, 5xx,
dropped connections and failing QUITs are classified, and that messages share one connection."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from doormail.delivery.session import (
    PermanentDeliveryError,
    SmtpReply,
    SmtpSession,
    TemporaryDeliveryError,
)
from doormail.settings import Smtp
from tests.conftest import free_port
from tests.scripted_smtp import Scripted

MESSAGE = b"From: cam@example.org\r\nTo: alice@example.com\r\nSubject: hi\r\n\r\nhello\r\n"


@pytest.fixture
def scripted() -> Iterator[tuple[Scripted, int]]:
    handler = Scripted()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=handler.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def _smtp(port: int, **changes: Any) -> Smtp:
    return Smtp(server="127.0.0.1", port=port, **changes)


def _session(port: int, stages: list[tuple[str, str]] | None = None, **changes: Any) -> SmtpSession:
    on_stage = (
        (lambda stage, message: stages.append((stage, message))) if stages is not None else None
    )
    return SmtpSession(
        _smtp(port, **changes), ssl.create_default_context(), on_stage=on_stage, timeout=5
    )


async def test_a_mail_is_sent_and_the_servers_reply_returned(
    scripted: tuple[Scripted, int],
) -> None:
    handler, port = scripted
    stages: list[tuple[str, str]] = []
    async with _session(port, stages) as session:
        reply = await session.send("cam@example.org", "alice@example.com", MESSAGE)
    assert reply == SmtpReply(250, "2.0.0 Ok: queued as SCRIPTED")
    assert handler.received == [MESSAGE]
    names = [stage for stage, _ in stages]
    for stage in ("resolving", "connecting", "ehlo", "mail", "rcpt", "data", "reply"):
        assert stage in names
    assert stages[-1] == ("reply", "250 2.0.0 Ok: queued as SCRIPTED")


async def test_several_mails_share_one_connection(scripted: tuple[Scripted, int]) -> None:
    handler, port = scripted
    async with _session(port) as session:
        for n in range(5):
            await session.send("cam@example.org", f"user{n}@example.com", MESSAGE)
    assert len(handler.received) == 5
    assert len(handler.connections) == 1
    assert handler.resets == 0  # a completed transaction needs no RSET


@pytest.mark.parametrize("reply", ["421 4.7.0 Too busy, closing", "451 4.3.0 Try again later"])
async def test_421_and_451_are_temporary(scripted: tuple[Scripted, int], reply: str) -> None:
    handler, port = scripted
    handler.rcpt_replies.append(reply)
    async with _session(port) as session:
        with pytest.raises(TemporaryDeliveryError) as caught:
            await session.send("cam@example.org", "alice@example.com", MESSAGE)
    assert caught.value.code == int(reply[:3])
    assert caught.value.reply == reply
    assert caught.value.stage == "rcpt"


async def test_451_to_data_is_temporary(scripted: tuple[Scripted, int]) -> None:
    handler, port = scripted
    handler.data_replies.append("451 4.3.0 Queue file write error")
    async with _session(port) as session:
        with pytest.raises(TemporaryDeliveryError) as caught:
            await session.send("cam@example.org", "alice@example.com", MESSAGE)
    assert caught.value.stage == "data"
    assert caught.value.reply == "451 4.3.0 Queue file write error"


async def test_550_is_permanent_and_the_next_mail_follows_a_reset_on_the_same_connection(
    scripted: tuple[Scripted, int],
) -> None:
    handler, port = scripted
    handler.rcpt_replies.append("550 5.1.1 <nobody@example.com>: Recipient address rejected")
    async with _session(port) as session:
        with pytest.raises(PermanentDeliveryError) as caught:
            await session.send("cam@example.org", "nobody@example.com", MESSAGE)
        reply = await session.send("cam@example.org", "alice@example.com", MESSAGE)
    assert caught.value.code == 550
    assert "recipient" in caught.value.hint
    assert reply.code == 250
    assert handler.resets == 1
    assert len(handler.connections) == 1


async def test_connection_dropped_after_the_250_to_data_is_a_success(
    scripted: tuple[Scripted, int],
) -> None:
    handler, port = scripted
    handler.drop_after_data = True
    async with _session(port) as session:
        reply = await session.send("cam@example.org", "alice@example.com", MESSAGE)
        assert reply.code == 250
        handler.drop_after_data = False
        # The next mail opens a new connection instead of failing on the dropped one.
        await asyncio.sleep(0.05)
        second = await session.send("cam@example.org", "bob@example.com", MESSAGE)
    assert second.code == 250
    assert len(handler.received) == 2
    assert len(handler.connections) == 2


async def test_connection_dropped_before_the_reply_to_data_is_temporary(
    scripted: tuple[Scripted, int],
) -> None:
    handler, port = scripted
    handler.drop_instead_of_data_reply = True
    async with _session(port) as session:
        with pytest.raises(TemporaryDeliveryError) as caught:
            await session.send("cam@example.org", "alice@example.com", MESSAGE)
    assert caught.value.stage == "data"


async def test_a_failing_quit_is_still_a_success(scripted: tuple[Scripted, int]) -> None:
    handler, port = scripted
    handler.quit_reply = "500 5.5.1 QUIT? Never heard of it"
    async with _session(port) as session:
        reply = await session.send("cam@example.org", "alice@example.com", MESSAGE)
    assert reply.code == 250
    assert not session.connected


async def test_auth_is_never_sent_in_the_clear_with_security_auto(
    scripted: tuple[Scripted, int],
) -> None:
    handler, port = scripted
    with pytest.raises(PermanentDeliveryError) as caught:
        async with _session(port, username="cam", password="secret"):
            pass
    assert caught.value.stage == "auth"
    assert "smtp.security" in caught.value.hint
    assert handler.logins == []


async def test_security_starttls_refuses_a_server_without_starttls(
    scripted: tuple[Scripted, int],
) -> None:
    _handler, port = scripted
    with pytest.raises(PermanentDeliveryError) as caught:
        async with _session(port, security="starttls"):
            pass
    assert "STARTTLS" in str(caught.value)


async def test_auth_in_the_clear_with_security_none(scripted: tuple[Scripted, int]) -> None:
    handler, port = scripted
    stages: list[tuple[str, str]] = []
    async with _session(port, stages, security="none", username="cam", password="secret") as s:
        await s.send("cam@example.org", "alice@example.com", MESSAGE)
    assert handler.logins == [(b"cam", b"secret")]
    assert ("auth", "PLAIN as cam → 235 2.7.0 Authentication successful") in stages


async def test_wrong_password_is_permanent_with_the_password_hint(
    scripted: tuple[Scripted, int],
) -> None:
    _handler, port = scripted
    with pytest.raises(PermanentDeliveryError) as caught:
        async with _session(port, security="none", username="cam", password="wrong"):
            pass
    assert caught.value.code == 535
    assert "check username and password" in caught.value.hint


async def test_a_server_that_is_down_is_temporary() -> None:
    with pytest.raises(TemporaryDeliveryError) as caught:
        async with _session(free_port()):
            pass
    assert caught.value.stage == "connecting"
