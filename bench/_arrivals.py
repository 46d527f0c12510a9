"""An SMTP server that notes when each message was accepted, in a process of its own (so that
reading large messages does not compete with the load it measures for one interpreter lock):
`python -m bench._arrivals PORT FILE` accepts every message and appends to FILE a line
`EVENT-ID<TAB>UNIX-TIME` per message (its X-Doormail-Event header) and `ehlo` per connection."""

from __future__ import annotations

import sys
import threading
import time
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any, TextIO

from aiosmtpd.controller import Controller


class Arrivals:
    """The aiosmtpd handler: a line per accepted message and per connection, written at once."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()

    def _note(self, line: str) -> None:
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        self._note("ehlo")
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        accepted = time.time()
        headers = BytesHeaderParser().parsebytes(envelope.original_content or envelope.content)
        self._note(f"{headers.get('X-Doormail-Event', '')}\t{accepted!r}")
        return "250 2.0.0 Ok: queued"


def main(port: int, path: Path) -> None:
    with path.open("a", encoding="utf-8") as out:
        controller = Controller(Arrivals(out), hostname="127.0.0.1", port=port)
        controller.start()
        try:
            threading.Event().wait()
        finally:
            controller.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
