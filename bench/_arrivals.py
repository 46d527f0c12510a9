"""An SMTP server that notes when each message was accepted, in a process of its own:
`python -m bench._arrivals PORT FILE` accepts every message and appends to FILE a line
`EVENT-ID<TAB>UNIX-TIME` per message (its X-Doormail-Event header) and `ehlo` per connection.

It reads a message's content in one search for the end of data instead of line by line, as
aiosmtpd does: at 50 messages a second of 200 kB (three snapshots each), a line-by-line reader
was the slowest part of the measurement, not of doormail."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path
from typing import TextIO

_EVENT = re.compile(rb"^X-Doormail-Event: *(.+?)\r?$", re.MULTILINE | re.IGNORECASE)
_END_OF_DATA = b"\r\n.\r\n"
_EHLO = b"250-arrivals\r\n250-PIPELINING\r\n250-SIZE 104857600\r\n250 8BITMIME\r\n"


class Noted:
    """The file arrivals are noted in, written through at once."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def line(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()


async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, noted: Noted) -> None:
    writer.write(b"220 arrivals ESMTP\r\n")
    try:
        while line := await reader.readline():
            command = line[:4].upper()
            if command == b"EHLO":
                noted.line("ehlo")
                writer.write(_EHLO)
            elif command == b"DATA":
                writer.write(b"354 end with <CRLF>.<CRLF>\r\n")
                await writer.drain()
                content = await reader.readuntil(_END_OF_DATA)
                accepted = time.time()
                found = _EVENT.search(content.split(b"\r\n\r\n", 1)[0])
                event_id = found.group(1).decode() if found else ""
                noted.line(f"{event_id}\t{accepted!r}")
                writer.write(b"250 2.0.0 Ok: queued\r\n")
            elif command == b"QUIT":
                writer.write(b"221 2.0.0 Bye\r\n")
                await writer.drain()
                return
            else:  # HELO, MAIL, RCPT, RSET, NOOP: all welcome
                writer.write(b"250 2.0.0 Ok\r\n")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def serve(port: int, path: Path) -> None:
    with path.open("a", encoding="utf-8") as out:
        noted = Noted(out)
        server = await asyncio.start_server(
            lambda r, w: session(r, w, noted), "127.0.0.1", port, limit=64 * 1024 * 1024
        )
        async with server:
            await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), Path(sys.argv[2])))
