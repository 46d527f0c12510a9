"""Mail transactions with SMTP PIPELINING (RFC 2920) over a connection that aiosmtplib opened:
MAIL, RCPT and DATA go out in one write and their replies are read together, so a message costs
two round trips instead of four. aiosmtplib reads one reply per command and drops what arrives
early, so this protocol takes the open transport over once the session is set up (TLS, EHLO,
AUTH stay with aiosmtplib)."""

from __future__ import annotations

import asyncio
import collections
import re
from collections.abc import Awaitable, Callable

import aiosmtplib

from doormail.delivery.errors import (
    Attempt,
    DeliveryError,
    PermanentDeliveryError,
    SmtpReply,
    Stage,
    from_exception,
    from_reply,
)

Emit = Callable[[str, str], None]
# Called before a message's end of data is sent (see SmtpSession.send): None when it may go
# at once, or what to await first.
Ready = Callable[[], Awaitable[None] | None]
Envelope = tuple[str, str, list[str]]  # sender, recipient, MAIL FROM options

# A reply line: three digits, then a space (last line) or a hyphen (more lines follow).
_REPLY_LINE = re.compile(rb"^([2-5][0-9][0-9])([ -]?)(.*?)\r?$")
_MAX_REPLY_BYTES = 64 * 1024
# Any control character would let an address smuggle another command into the pipeline.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_END = b".\r\n"


def data_block(message: bytes) -> bytes:
    """The bytes of the DATA phase: CRLF line ends, a leading dot doubled on every line
    (RFC 5321 4.5.2), and the final `.` line. The common case (already CRLF) costs only a few
    scans in C."""
    crlf = message.count(b"\r\n")
    if message.count(b"\n") != crlf or message.count(b"\r") != crlf:
        message = re.sub(rb"\r\n|\r|\n", b"\r\n", message)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    stuffed = message.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed + b".\r\n"


def _commands(envelope: Envelope, *, rset: bool) -> dict[Stage, str]:
    """The pipelined group by stage: RSET (after a failed transaction), MAIL, RCPT, DATA."""
    sender, recipient, options = envelope
    for address in (sender, recipient):
        if _CONTROL.search(address):
            raise PermanentDeliveryError(
                f"the address {address!r} contains a control character",
                hint="check smtp.from and the recipient's address",
                stage="mail",
            )
    commands: dict[Stage, str] = {"rset": "RSET"} if rset else {}
    commands["mail"] = " ".join([f"MAIL FROM:<{sender}>", *options])
    commands["rcpt"] = f"RCPT TO:<{recipient}>"
    commands["data"] = "DATA"
    return commands


def _lines(commands: dict[Stage, str]) -> bytes:
    return "".join(f"{line}\r\n" for line in commands.values()).encode()


class PipelinedConnection(asyncio.Protocol):
    """An SMTP connection after EHLO (and AUTH) on which whole transactions are pipelined.
    Replies are queued as they arrive, however they are split into packets."""

    def __init__(
        self,
        transport: asyncio.Transport,
        *,
        attempt: Attempt,
        timeout: float,
        emit: Emit,
    ) -> None:
        self._transport = transport
        self._attempt = attempt
        self._timeout = timeout
        self._emit = emit
        self._buffer = bytearray()
        self._lines: list[tuple[int, str]] = []
        self._replies: collections.deque[SmtpReply] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._lost: BaseException | None = None
        self._unfinished = False
        # The envelope of the next mail, sent behind the previous content, whose replies are
        # still to be read, and its commands by stage.
        self._ahead: tuple[Envelope, dict[Stage, str]] | None = None

    @classmethod
    def take_over(
        cls, client: aiosmtplib.SMTP, *, attempt: Attempt, timeout: float, emit: Emit
    ) -> PipelinedConnection | None:
        """Read the replies of `client`'s connection from now on; None when it has none."""
        transport = client.transport
        if not isinstance(transport, asyncio.Transport) or transport.is_closing():
            return None
        connection = cls(transport, attempt=attempt, timeout=timeout, emit=emit)
        transport.set_protocol(connection)
        return connection

    # --- asyncio.Protocol -----------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            self._parse()
        except aiosmtplib.SMTPResponseException as error:
            self._lost = error
            self._transport.close()
        if len(self._buffer) > _MAX_REPLY_BYTES:
            self._lost = aiosmtplib.SMTPResponseException(-1, "reply too long")
            self._transport.close()
        self._wake()

    def eof_received(self) -> bool:
        self._lost = self._lost or aiosmtplib.SMTPServerDisconnected(
            "the server closed the connection"
        )
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        lost = aiosmtplib.SMTPServerDisconnected("connection lost")
        if exc is not None:
            lost.__cause__ = exc
        self._lost = self._lost or lost
        self._wake()

    def _parse(self) -> None:
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[: end + 1]).rstrip(b"\r\n")
            del self._buffer[: end + 1]
            found = _REPLY_LINE.match(line)
            if found is None:
                shown = line.decode("utf-8", "replace")
                raise aiosmtplib.SMTPResponseException(-1, f"malformed reply line: {shown!r}")
            code, more, text = found.groups()
            self._lines.append((int(code), text.decode("utf-8", "surrogateescape").strip()))
            if more != b"-":
                first = self._lines[0][0]
                message = "\n".join(part for _, part in self._lines)
                self._lines = []
                self._replies.append(SmtpReply(first, message))

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # --- reading and writing --------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._lost is None and not self._transport.is_closing()

    async def _reply(self) -> SmtpReply:
        while not self._replies:
            if self._lost is not None:
                raise self._lost
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(self._timeout):
                    await self._waiter
            except TimeoutError:
                self._transport.close()
                raise aiosmtplib.SMTPReadTimeoutError("timed out waiting for the server") from None
            finally:
                self._waiter = None
        return self._replies.popleft()

    def _write(self, data: bytes) -> None:
        if not self.connected:
            raise self._lost or aiosmtplib.SMTPServerDisconnected("connection lost")
        self._transport.write(data)

    async def send(
        self,
        sender: str,
        recipient: str,
        data: bytes,
        options: list[str],
        then: Envelope | None = None,
        before_end: Ready | None = None,
    ) -> SmtpReply:
        """One message to one recipient: [RSET,] MAIL, RCPT, DATA in one write, then the
        content. With `then`, the envelope of the next mail goes out right behind this one's
        content (RFC 2920 allows it after the end of data), so that mail costs one round trip.
        `before_end` is asked before the end of data is sent, and what it returns awaited.
        Raises DeliveryError, classified by the stage that failed."""
        envelope = (sender, recipient, options)
        commands = _commands(envelope, rset=self._unfinished)
        stage: Stage = next(iter(commands))
        try:
            if self._ahead is not None and self._ahead[0] == envelope:
                commands, self._ahead = self._ahead[1], None
            else:
                self._abandon_ahead()
                self._write(_lines(commands))
            self._unfinished = True
            replies: dict[Stage, SmtpReply] = {}
            for stage in commands:
                replies[stage] = reply = await self._reply()
                if reply.code == 421:  # the server is closing the connection
                    raise from_reply(reply, stage=stage, attempt=self._attempt)
            self._emit("mail", f"{commands['mail']} → {replies['mail']}")
            self._emit("rcpt", f"{commands['rcpt']} → {replies['rcpt']}")
            await self._refused(replies)
            stage = "data"
            self._emit("data", f"DATA: {len(data)} bytes (pipelined)")
            # The end of data closes this transaction, whatever the server answers to it.
            self._unfinished = False
            block = data_block(data)
            waiting = None if before_end is None else before_end()
            if waiting is None:
                self._write(block + self._send_ahead(then))
            else:
                # The content goes now; its final dot only once the caller is ready (the
                # previous mail's outcome is durable), so a crash repeats at most one mail.
                self._write(block[: -len(_END)])
                await self._ready(waiting)
                self._write(_END + self._send_ahead(then))
            reply = self._expect(await self._reply(), 250, stage)
        except DeliveryError:
            raise
        except Exception as error:
            raise from_exception(error, stage=stage, attempt=self._attempt) from error
        self._emit("reply", str(reply))
        return reply

    async def _ready(self, waiting: Awaitable[None]) -> None:
        try:
            await waiting
        except BaseException:
            # The message is open on the server: only dropping the connection discards it.
            self._transport.close()
            raise

    def _send_ahead(self, then: Envelope | None) -> bytes:
        if then is None:
            return b""
        try:
            commands = _commands(then, rset=False)
        except DeliveryError:
            return b""  # that mail fails on its own turn, with its own error
        self._ahead = (then, commands)
        return _lines(commands)

    def _abandon_ahead(self) -> None:
        """A mail other than the one announced came next. The announced one may already have
        its DATA open, which cannot be ended without sending a message: drop the connection
        (the server discards an unfinished message); the caller's mail goes on a new one."""
        if self._ahead is not None:
            self._ahead = None
            self._transport.close()
            raise aiosmtplib.SMTPServerDisconnected("the mail announced ahead did not follow")

    async def _refused(self, replies: dict[Stage, SmtpReply]) -> None:
        """Raise the first refusal in a pipelined group, after ending a DATA phase that a
        server opened anyway (RFC 2920 says it should not, with no valid recipient)."""
        expected: dict[Stage, int] = {"rset": 250, "mail": 250, "rcpt": 250, "data": 354}
        for stage, reply in replies.items():
            if reply.code == expected[stage]:
                continue
            if replies["data"].code == 354:
                self._write(b".\r\n")
                await self._reply()
            raise from_reply(reply, stage=stage, attempt=self._attempt)

    def _expect(self, reply: SmtpReply, code: int, stage: Stage) -> SmtpReply:
        if reply.code != code:
            raise from_reply(reply, stage=stage, attempt=self._attempt)
        return reply

    async def quit(self, timeout: float) -> None:
        """QUIT and close; a server that does not answer has taken every message already."""
        self._timeout = timeout
        if self._ahead is not None:  # DATA may be open: QUIT would become message text
            self._transport.close()
            return
        try:
            self._write(b"QUIT\r\n")
            await self._reply()
        except (aiosmtplib.SMTPException, OSError):
            pass
        finally:
            self._transport.close()
