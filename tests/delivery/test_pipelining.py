"""SMTP PIPELINING (RFC 2920): MAIL, RCPT and DATA leave in one write, replies are read however
the server splits them, and the DATA block is dot-stuffed with CRLF line ends."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from doormail.delivery.pipelining import data_block
from doormail.delivery.session import PermanentDeliveryError, SmtpSession, TemporaryDeliveryError
from doormail.settings import Smtp
from tests.conftest import free_port

MESSAGE = b"Subject: dots\r\n\r\n.starts with a dot\r\nmiddle\r\n..two dots\r\n"


def test_data_block_doubles_leading_dots_and_ends_with_a_lone_dot() -> None:
    assert data_block(b".a\r\nb\r\n.c\r\n") == b"..a\r\nb\r\n..c\r\n.\r\n"


def test_data_block_makes_bare_line_ends_crlf_and_ends_the_last_line() -> None:
    assert data_block(b"a\nb\rc") == b"a\r\nb\r\nc\r\n.\r\n"


def test_data_block_keeps_a_crlf_message_as_it_is() -> None:
    assert data_block(b"a\r\nb\r\n") == b"a\r\nb\r\n.\r\n"


def smtp(port: int) -> Smtp:
    return Smtp(server="127.0.0.1", port=port, security="none")


class Pipelining:
    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [responses[0], "250-PIPELINING", *responses[1:]]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(envelope.original_content)
        return "250 2.0.0 Ok: queued"


async def test_a_server_offering_pipelining_gets_the_message_intact() -> None:
    handler, port = Pipelining(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    stages: list[tuple[str, str]] = []
    try:
        session = SmtpSession(
            smtp(port),
            ssl.create_default_context(),
            timeout=5,
            on_stage=lambda stage, text: stages.append((stage, text)),
        )
        async with session:
            for _ in range(3):
                reply = await session.send("cam@example.org", "alice@example.com", MESSAGE)
                assert str(reply) == "250 2.0.0 Ok: queued"
    finally:
        controller.stop()
    assert handler.received == [MESSAGE] * 3
    assert any(stage == "data" and "pipelined" in text for stage, text in stages)


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(script: Script) -> tuple[asyncio.Server, int]:
    """A bare SMTP server over a real socket, for what aiosmtpd cannot be told to do."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 scripted ESMTP\r\n")
        assert (await reader.readline()).startswith(b"EHLO")
        writer.write(b"250-scripted\r\n250 PIPELINING\r\n")
        try:
            await script(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def lines(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    return [await asyncio.wait_for(reader.readline(), 2) for _ in range(count)]


async def test_mail_rcpt_and_data_leave_before_any_reply() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Nothing is answered until all three commands are in: a client waiting for each
        # reply would stall here and time out.
        group = await lines(reader, 3)
        assert [line.split(b":")[0].strip() for line in group] == [
            b"MAIL FROM",
            b"RCPT TO",
            b"DATA",
        ]
        # Replies split across writes, one of them over two lines.
        writer.write(b"250 2.1.0 Ok\r\n250-2.1.5 Ok\r\n")
        await writer.drain()
        writer.write(b"250 2.1.5 still Ok\r\n354 go ahead\r\n")
        while await reader.readline() != b".\r\n":
            pass
        writer.write(b"250 2.0.0 Ok: queued as 42\r\n")
        await lines(reader, 1)  # QUIT
        writer.write(b"221 bye\r\n")

    server, port = await serve(script)
    try:
        async with SmtpSession(smtp(port), ssl.create_default_context(), timeout=5) as session:
            reply = await session.send("cam@example.org", "alice@example.com", MESSAGE)
    finally:
        server.close()
    assert str(reply) == "250 2.0.0 Ok: queued as 42"


async def test_a_refused_sender_is_reported_and_the_next_mail_starts_with_rset() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await lines(reader, 3)
        writer.write(b"553 5.7.1 Sender refused\r\n554 5.5.1 no valid recipients\r\n")
        writer.write(b"554 5.5.1 no valid recipients\r\n")
        group = await lines(reader, 4)
        assert group[0] == b"RSET\r\n"
        writer.write(b"250 Ok\r\n250 Ok\r\n250 Ok\r\n354 go ahead\r\n")
        while await reader.readline() != b".\r\n":
            pass
        writer.write(b"250 2.0.0 Ok\r\n")
        await reader.readline()

    server, port = await serve(script)
    try:
        async with SmtpSession(smtp(port), ssl.create_default_context(), timeout=5) as session:
            with pytest.raises(PermanentDeliveryError) as refused:
                await session.send("bad@example.org", "alice@example.com", MESSAGE)
            reply = await session.send("cam@example.org", "alice@example.com", MESSAGE)
    finally:
        server.close()
    assert (refused.value.stage, refused.value.code) == ("mail", 553)
    assert reply.code == 250


async def test_the_next_envelope_goes_out_with_the_previous_content() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await lines(reader, 3)
        writer.write(b"250 Ok\r\n250 Ok\r\n354 go ahead\r\n")
        while await reader.readline() != b".\r\n":
            pass
        # The second mail's MAIL, RCPT and DATA are already here, before the first's 250:
        # one round trip for that mail instead of two.
        group = await lines(reader, 3)
        assert [line.split(b":")[0].strip() for line in group] == [
            b"MAIL FROM",
            b"RCPT TO",
            b"DATA",
        ]
        writer.write(b"250 2.0.0 first\r\n250 Ok\r\n250 Ok\r\n354 go ahead\r\n")
        while await reader.readline() != b".\r\n":
            pass
        writer.write(b"250 2.0.0 second\r\n")
        await lines(reader, 1)
        writer.write(b"221 bye\r\n")

    server, port = await serve(script)
    second = ("cam@example.org", "bob@example.com", MESSAGE)
    try:
        async with SmtpSession(smtp(port), ssl.create_default_context(), timeout=5) as session:
            first = await session.send("cam@example.org", "alice@example.com", MESSAGE, then=second)
            following = await session.send(*second)
    finally:
        server.close()
    assert (str(first), str(following)) == ("250 2.0.0 first", "250 2.0.0 second")


async def test_an_announced_mail_that_does_not_follow_is_never_delivered() -> None:
    handler, port = Pipelining(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    announced = ("cam@example.org", "announced@example.com", b"Subject: never\r\n\r\nno\r\n")
    other = b"Subject: other\r\n\r\nyes\r\n"
    try:
        async with SmtpSession(smtp(port), ssl.create_default_context(), timeout=5) as session:
            await session.send("cam@example.org", "alice@example.com", MESSAGE, then=announced)
            with pytest.raises(TemporaryDeliveryError):
                # DATA is open for the announced mail: the connection is dropped instead.
                await session.send("cam@example.org", "bob@example.com", other)
            await session.send("cam@example.org", "bob@example.com", other)
            await session.send("cam@example.org", "carol@example.com", MESSAGE, then=announced)
        # Leaving with a mail announced closes the connection without QUIT (QUIT would be
        # taken as message text).
    finally:
        controller.stop()
    assert handler.received == [MESSAGE, other, MESSAGE]
