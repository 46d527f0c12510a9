"""The soak test's SMTP server, run as a process of its own so that the test can stop and start
it like a real one: it accepts every mail and, before answering 250 to its DATA, appends a line
`time Message-ID X-Doormail-Event` to the record (flushed, so that a mail the server said it took
is on record even when the process is killed right after). With `--faults F` it answers 421
(then closes the connection) or 451 at random to that share of EHLO, MAIL, RCPT and DATA
commands, and records each as `fault time COMMAND CODE`; SIGUSR1 ends the faults.

    python tests/soak/smtp_recorder.py --port 2525 --record mails.txt [--faults 0.2] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import time
from email.parser import BytesHeaderParser
from typing import Any, TextIO

from aiosmtpd.smtp import SMTP

READY = "smtp-recorder ready"


class Recorder:
    """The aiosmtpd handler: records what it accepted, and fails a share of the commands."""

    def __init__(self, record: TextIO, faults: float, rng: random.Random) -> None:
        self.record = record
        self.faults = faults
        self.rng = rng

    def stop_faults(self) -> None:
        self.faults = 0.0

    def _fault(self, server: Any, command: str) -> str | None:
        if self.faults <= 0 or self.rng.random() >= self.faults:
            return None
        if self.rng.random() < 0.5:
            reply = "421 4.3.2 Service not available, closing transmission channel"
            # RFC 5321 3.8: the server closes the connection after a 421.
            asyncio.get_running_loop().call_soon(server.transport.close)
        else:
            reply = "451 4.3.0 Requested action aborted: local error in processing"
        self._write(f"fault {time.time():.3f} {command} {reply[:3]}")
        return reply

    def _write(self, line: str) -> None:
        self.record.write(line + "\n")
        self.record.flush()

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        fault = self._fault(server, "EHLO")
        if fault is not None:
            return [fault]
        session.host_name = hostname  # a handler's EHLO hook records it itself
        return responses

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        fault = self._fault(server, "MAIL")
        if fault is not None:
            return fault
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        fault = self._fault(server, "RCPT")
        if fault is not None:
            return fault
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        fault = self._fault(server, "DATA")
        if fault is not None:
            return fault
        headers = BytesHeaderParser().parsebytes(envelope.original_content)
        message_id = str(headers.get("Message-ID", "-")).strip()
        event = str(headers.get("X-Doormail-Event", "-")).strip()
        self._write(f"{time.time():.3f} {message_id} {event}")
        return "250 2.0.0 Ok: queued"


async def serve(port: int, record: TextIO, faults: float, seed: int) -> None:
    handler = Recorder(record, faults, random.Random(seed))
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, handler.stop_faults)
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="soak.example", ident="soak recorder"), "127.0.0.1", port
    )
    print(READY, flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", required=True)
    parser.add_argument("--faults", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args()
    with open(options.record, "a", encoding="utf-8") as record:
        asyncio.run(serve(options.port, record, options.faults, options.seed))


if __name__ == "__main__":
    main()
