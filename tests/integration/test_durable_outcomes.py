"""A mail's outcome is durable before the next mail's end of data goes out (with and without
PIPELINING), so that a worker killed at any moment sends again at most the one mail in flight:
the scripted server looks at the outbox each time a message's end of data arrives."""

from __future__ import annotations

from typing import Any

from tests.integration.test_worker import (  # the fixtures too: without and with PIPELINING
    Outbox,
    Server,
    enqueue,
    make_worker,
    outbox,
    server,
    smtp_to,
)

__all__ = ["outbox", "server"]
from tests.scripted_smtp import Scripted


class Watching(Scripted):
    """Notes, at each end of data, how many mails the outbox already records as sent."""

    def __init__(self, outbox: Outbox, *, pipelining: bool) -> None:
        super().__init__(pipelining=pipelining)
        self.outbox = outbox
        self.sent_before: list[int] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.sent_before.append(self.outbox.admin.counts()["sent"])
        return await super().handle_DATA(server, session, envelope)


async def test_each_outcome_is_saved_before_the_next_mail_is_handed_over(
    outbox: Outbox, server: Server
) -> None:
    server.handler = Watching(outbox, pipelining=server.handler.pipelining)
    server.start()
    worker = make_worker(outbox, smtp_to(server.port))
    enqueue(outbox, worker, count=30)
    assert await worker.drain() == 30
    assert server.handler.sent_before == list(range(30))
    assert outbox.admin.counts()["sent"] == 30
