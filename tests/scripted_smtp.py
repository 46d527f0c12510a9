"""An in-process aiosmtpd handler whose replies a test sets in advance: queued RCPT and DATA
replies (then 250), connections dropped after or instead of the DATA reply, a slow DATA, a
failing QUIT, a hang-up on a reused connection, PIPELINING offered or not, and a record of what
arrived, over how many connections, with how many RSETs, QUITs and logins."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.conftest import free_port

PASSWORD = b"secret"  # the one password `authenticate` accepts


class Scripted:
    """The handler; set its attributes before the client speaks."""

    def __init__(self, *, pipelining: bool = False) -> None:
        self.pipelining = pipelining
        self.rcpt_replies: list[str] = []
        self.data_replies: list[str] = []
        self.drop_after_data = False
        self.drop_instead_of_data_reply = False
        self.data_delay = 0.0
        self.quit_reply: str | None = None
        # How the server hangs up on the first MAIL of a connection that already carried a
        # mail, as when its idle timeout strikes just as the client sends: "421" replies
        # first (RFC 5321 3.8), "drop" does not.
        self.hang_up_on_reuse: str | None = None
        self.received: list[bytes] = []
        self.connections: list[object] = []
        self.data_commands = 0
        self.resets = 0
        self.quits = 0
        self.logins: list[tuple[bytes, bytes]] = []
        self._served: list[object] = []

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        if session not in self.connections:
            self.connections.append(session)
        session.host_name = hostname  # a handler's EHLO hook must record it itself
        if self.pipelining:
            return [responses[0], "250-PIPELINING", *responses[1:]]
        return responses

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.hang_up_on_reuse is not None and session in self._served:
            self._served.remove(session)
            if self.hang_up_on_reuse == "drop":
                server.transport.abort()  # what follows is never written
            else:
                asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.4.2 Idle too long, closing connection"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.rcpt_replies:
            return self.rcpt_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_commands += 1
        await asyncio.sleep(self.data_delay)
        if self.data_replies:
            return self.data_replies.pop(0)
        self.received.append(envelope.original_content)
        self._served.append(session)
        if self.drop_instead_of_data_reply:
            server.transport.close()
            return "250 never seen"
        if self.drop_after_data:
            # Closed once the 250 is written, as some large providers do.
            asyncio.get_running_loop().call_soon(server.transport.close)
        return "250 2.0.0 Ok: queued as SCRIPTED"

    async def handle_RSET(self, server: Any, session: Any, envelope: Any) -> str:
        self.resets += 1
        return "250 2.0.0 Ok"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        self.quits += 1
        return self.quit_reply or "221 2.0.0 Bye"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login, data.password))
        return AuthResult(success=data.password == PASSWORD, handled=False)


@contextmanager
def listening(handler: object) -> Iterator[int]:
    """`handler` served by aiosmtpd on a free loopback port (yielded) while the block runs."""
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()
