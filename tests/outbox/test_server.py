"""The SMTP server's shared state on SQLite and PostgreSQL: an outage begins at the first
failure and counts its probes, one caller at a time takes a probe's turn, the interval grows to
its ceiling, an answer ends the outage, "retry now" makes queued mail due and the probe
immediate, and a mail the server was unreachable for is not counted as tried."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from doormail.outbox import Outcome, Queue
from doormail.outbox.server import ProbePolicy, ServerWatch
from tests.outbox.helpers import T0, mark_temporary, queue_committed, unique_mail


def test_the_probe_interval_grows_to_its_ceiling_of_at_most_ten_seconds() -> None:
    policy = ProbePolicy()
    intervals = [policy.interval(n) for n in range(8)]
    assert intervals[:4] == [2.0, 3.0, 4.5, 6.75]
    assert intervals[4:] == [8.0] * 4
    # A two-minute outage takes at most 20 connections.
    elapsed, probes = 0.0, 0
    while elapsed + policy.interval(probes) < 120:
        elapsed += policy.interval(probes)
        probes += 1
    assert probes <= 19
    with pytest.raises(ValueError):
        ProbePolicy(ceiling=11)


def test_an_outage_begins_once_and_one_caller_takes_each_probe(engine: Engine) -> None:
    watch = ServerWatch(engine)
    assert watch.read().up
    watch.unreachable("connection refused", "check smtp.port", now=T0)
    watch.unreachable("connection refused again", "check smtp.port", now=T0 + 1)
    state = watch.read()
    assert (state.state, state.since, state.next_probe_at) == ("unreachable", T0, T0 + 2)
    assert state.last_error == "connection refused again"
    assert not watch.take_probe(now=T0 + 1.9)
    assert watch.take_probe(now=T0 + 2)
    assert not ServerWatch(engine).take_probe(now=T0 + 2)  # another worker: already taken
    assert watch.read().next_probe_at == T0 + 2 + 3
    assert watch.answered(now=T0 + 6)
    assert watch.read().up and not watch.answered(now=T0 + 7)


def test_retry_now_makes_queued_mail_due_and_the_probe_immediate(
    engine: Engine, queue: Queue
) -> None:
    [greylisted, waiting] = queue_committed(
        engine, queue, [unique_mail(), unique_mail()], 86400, now=T0
    )
    queue.claim("w", 10, 60, now=T0)
    mark_temporary(queue, greylisted.id, "451 later", now=T0)
    queue.record([Outcome(waiting.id, "unreachable", "SMTP server unreachable since …")], now=T0)
    watch = ServerWatch(engine)
    watch.unreachable("refused", "hint", now=T0)
    assert watch.status(now=T0 + 1).waiting == 2
    assert watch.retry_now(now=T0 + 1) == 2
    assert queue.claim("w", 10, 60, now=T0 + 1) != []
    assert watch.read().next_probe_at == T0 + 1


def test_a_mail_the_server_was_unreachable_for_is_not_counted_as_tried(
    engine: Engine, queue: Queue
) -> None:
    [item] = queue_committed(engine, queue, [unique_mail()], 10, now=T0)
    [claimed] = queue.claim("w", 10, 60, now=T0)
    assert claimed.attempts == 1
    text = "SMTP server unreachable since 2023-11-14 22:13:20 UTC: refused"
    statuses = queue.record([Outcome(item.id, "unreachable", text)], owner="w", now=T0 + 1)
    assert statuses == {item.id: "queued"}
    [again] = queue.claim("w", 10, 60, now=T0 + 1)  # due as it was
    assert again.attempts == 1
    queue.release("w", [item.id])
    assert queue.expire_overdue(now=T0 + 10) == 1  # its deadline still expires it
