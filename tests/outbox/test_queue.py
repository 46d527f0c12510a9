"""The outbox's queue on both sides of the hand-off: enqueue (each mail once), claim under a
lease, record outcomes with back-off and deadlines, expire, give back; on SQLite and on
PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine

from doormail.metrics import Metrics
from doormail.outbox import Admin, OutboxError, Outcome, Queue
from tests.outbox.helpers import (
    DAY,
    T0,
    mail,
    mark_failed,
    mark_sent,
    mark_temporary,
    queue_committed,
    queue_one,
    sample,
)


def test_queued_mail_is_due_at_once_and_expires_deliver_in_later(
    engine: Engine, queue: Queue
) -> None:
    [item] = queue_committed(engine, queue, [mail()], DAY, now=T0)
    assert item.status == "queued"
    assert (item.created_at, item.next_attempt_at, item.deliver_by) == (T0, T0, T0 + DAY)
    assert (item.to, item.kind, item.attempts, item.sent_at) == (
        "alice@example.com",
        "call",
        0,
        None,
    )


def test_the_message_is_kept_as_exact_bytes(engine: Engine, queue: Queue, admin: Admin) -> None:
    message = mail()
    [item] = queue_committed(engine, queue, [message], DAY, now=T0)
    assert admin.message(item.id) == message.data


def test_the_same_event_and_recipient_is_queued_only_once(
    engine: Engine, queue: Queue, admin: Admin, metrics: Metrics
) -> None:
    first = queue_committed(engine, queue, [mail("a@example.com"), mail("b@example.com")], DAY)
    again = queue_committed(engine, queue, [mail("a@example.com"), mail("c@example.com")], DAY)
    assert again[0].id == first[0].id
    assert admin.counts()["queued"] == 3
    assert sample(metrics, "doormail_mails_queued_total", kind="call") == 3


def test_a_mail_queued_again_on_its_own_is_answered_with_the_queued_one(
    engine: Engine, queue: Queue, admin: Admin, metrics: Metrics
) -> None:
    # What a second process taking the same event id does: every message is already queued.
    [first] = queue_committed(engine, queue, [mail("a@example.com")], DAY)
    [again] = queue_committed(engine, queue, [mail("a@example.com")], DAY)
    assert again == first
    assert admin.counts()["queued"] == 1
    assert sample(metrics, "doormail_mails_queued_total", kind="call") == 1


def test_mail_enqueued_in_a_transaction_that_rolls_back_is_not_queued(
    engine: Engine, queue: Queue, admin: Admin
) -> None:
    with pytest.raises(RuntimeError), engine.begin() as connection:
        queue.enqueue(connection, [mail()], DAY)
        raise RuntimeError("the event could not be stored")
    assert admin.counts()["queued"] == 0


def test_deliver_in_must_be_positive(engine: Engine, queue: Queue) -> None:
    with pytest.raises(OutboxError) as error:
        queue_committed(engine, queue, [mail()], 0)
    assert error.value.field == "deliver_in"


def test_claim_leases_due_mail_to_one_worker(engine: Engine, queue: Queue, admin: Admin) -> None:
    queued = queue_one(engine, queue)
    [claimed] = queue.claim("worker-a", 10, 60, now=T0 + 1)
    assert (claimed.id, claimed.attempts, claimed.recipient) == (queued, 1, "alice@example.com")
    assert claimed.data == admin.message(queued)
    assert queue.claim("worker-b", 10, 60, now=T0 + 2) == []
    item = admin.get(queued)
    assert item is not None and item.status == "sending"


def test_mail_waiting_for_its_back_off_is_not_claimed(engine: Engine, queue: Queue) -> None:
    queued = queue_one(engine, queue)
    queue.claim("worker-a", 10, 60, now=T0)
    mark_temporary(queue, queued, "451 4.3.0 try again later", now=T0 + 1)
    assert queue.claim("worker-a", 10, 60, now=T0 + 5) == []
    assert [c.id for c in queue.claim("worker-a", 10, 60, now=T0 + 6)] == [queued]


def test_claim_takes_at_most_the_batch_size_oldest_due_first(engine: Engine, queue: Queue) -> None:
    ids = [queue_one(engine, queue, now=T0 + n, recipient=f"r{n}@example.com") for n in range(5)]
    batch = queue.claim("worker-a", 3, 60, now=T0 + 10)
    assert [c.id for c in batch] == ids[:3]
    assert [c.id for c in queue.claim("worker-a", 3, 60, now=T0 + 10)] == ids[3:]


def test_a_claimed_mail_whose_lease_ran_out_is_claimed_again(engine: Engine, queue: Queue) -> None:
    queued = queue_one(engine, queue)
    queue.claim("worker-that-dies", 10, 30, now=T0)
    assert queue.claim("worker-b", 10, 30, now=T0 + 29) == []
    [again] = queue.claim("worker-b", 10, 30, now=T0 + 30)
    assert (again.id, again.attempts) == (queued, 2)


def test_a_renewed_lease_keeps_the_mail_from_other_workers(engine: Engine, queue: Queue) -> None:
    queued = queue_one(engine, queue)
    queue.claim("worker-a", 10, 30, now=T0)
    assert queue.renew("worker-a", [queued], 30, now=T0 + 20) == 1
    assert queue.renew("worker-b", [queued], 30, now=T0 + 20) == 0
    assert queue.claim("worker-b", 10, 30, now=T0 + 40) == []
    assert len(queue.claim("worker-b", 10, 30, now=T0 + 50)) == 1


def test_sent_mail_keeps_the_server_reply_and_the_time(
    engine: Engine, queue: Queue, admin: Admin, metrics: Metrics
) -> None:
    queued = queue_one(engine, queue)
    queue.claim("worker-a", 10, 60, now=T0)
    assert mark_sent(queue, queued, "250 2.0.0 Ok: queued as 4Xyz", now=T0 + 0.2)
    item = admin.get(queued)
    assert item is not None
    assert (item.status, item.sent_at, item.smtp_reply) == (
        "sent",
        T0 + 0.2,
        "250 2.0.0 Ok: queued as 4Xyz",
    )
    assert queue.claim("worker-a", 10, 60, now=T0 + DAY) == []
    assert sample(metrics, "doormail_mails_sent_total", kind="call") == 1
    assert sample(metrics, "doormail_delivery_seconds_bucket", le="0.25") == 1


def test_temporary_failures_retry_with_growing_back_off(
    engine: Engine, queue: Queue, admin: Admin
) -> None:
    queued = queue_one(engine, queue)
    now, waits = T0, []
    for _ in range(4):
        [claimed] = queue.claim("worker-a", 10, 60, now=now)
        assert mark_temporary(queue, claimed.id, "421 4.7.0 busy", now=now) == "queued"
        item = admin.get(queued)
        assert item is not None
        waits.append(item.next_attempt_at - now)
        now = item.next_attempt_at
    assert waits == [5, 10, 20, 40]
    last = admin.get(queued)
    assert last is not None and (last.last_error, last.attempts) == ("421 4.7.0 busy", 4)


def test_a_temporary_failure_past_the_deadline_expires_the_mail(
    engine: Engine, queue: Queue, admin: Admin, metrics: Metrics
) -> None:
    queued = queue_one(engine, queue, deliver_in=60)
    queue.claim("worker-a", 10, 60, now=T0 + 58)
    assert mark_temporary(queue, queued, "connection refused", now=T0 + 58) == "queued"
    item = admin.get(queued)
    assert item is not None and item.next_attempt_at == T0 + 60  # the last try, on the deadline
    queue.claim("worker-a", 10, 60, now=T0 + 60)
    assert mark_temporary(queue, queued, "connection refused", now=T0 + 60.5) == "expired"
    item = admin.get(queued)
    assert item is not None and (item.status, item.last_error) == ("expired", "connection refused")
    assert sample(metrics, "doormail_mails_expired_total", kind="call") == 1


def test_a_permanent_failure_fails_at_once_with_the_server_text(
    engine: Engine, queue: Queue, admin: Admin, metrics: Metrics
) -> None:
    queued = queue_one(engine, queue)
    queue.claim("worker-a", 10, 60, now=T0)
    reply = "550 5.1.1 <alice@example.com>: Recipient address rejected"
    assert mark_failed(queue, queued, reply, reply=reply, now=T0 + 1)
    item = admin.get(queued)
    assert item is not None and (item.status, item.last_error, item.smtp_reply) == (
        "failed",
        reply,
        reply,
    )
    assert queue.claim("worker-a", 10, 60, now=T0 + DAY - 1) == []
    assert sample(metrics, "doormail_mails_failed_total", kind="call") == 1


def test_a_worker_that_lost_its_lease_cannot_undo_the_next_workers_outcome(
    engine: Engine, queue: Queue, admin: Admin
) -> None:
    queued = queue_one(engine, queue)
    queue.claim("slow-worker", 10, 30, now=T0)
    queue.claim("worker-b", 10, 30, now=T0 + 31)
    assert mark_temporary(queue, queued, "timeout", owner="slow-worker", now=T0 + 40) is None
    assert mark_sent(queue, queued, "250 ok", now=T0 + 41)
    assert not mark_failed(queue, queued, "late 554", owner="worker-b", now=T0 + 42)
    item = admin.get(queued)
    assert item is not None and item.status == "sent"


def test_outcomes_of_a_batch_are_recorded_together(engine: Engine, queue: Queue) -> None:
    ids = [queue_one(engine, queue, recipient=f"r{n}@example.com") for n in range(3)]
    queue.claim("worker-a", 10, 60, now=T0)
    statuses = queue.record(
        [
            Outcome(ids[0], "sent", "250 ok"),
            Outcome(ids[1], "temporary", "452 4.2.2 mailbox full"),
            Outcome(ids[2], "failed", "554 5.7.1 relay denied"),
        ],
        owner="worker-a",
        now=T0 + 1,
    )
    assert statuses == {ids[0]: "sent", ids[1]: "queued", ids[2]: "failed"}


def test_a_round_saves_what_the_server_took_and_what_it_refused_as_record_would(
    engine: Engine, queue: Queue, admin: Admin, metrics: Metrics
) -> None:
    ids = [queue_one(engine, queue, recipient=f"r{n}@example.com") for n in range(3)]
    queue.claim("worker-a", 10, 60, now=T0)
    recording = queue.recording("worker-a")
    try:
        first = recording.save([Outcome(ids[0], "sent", "250 2.0.0 Ok: queued as 1")], now=T0 + 1)
        rest = recording.save(
            [
                Outcome(ids[1], "temporary", "452 4.2.2 mailbox full"),
                Outcome(ids[2], "failed", "554 5.7.1 relay denied"),
            ],
            now=T0 + 2,
        )
    finally:
        recording.close()
    assert (first, rest) == ({ids[0]: "sent"}, {ids[1]: "queued", ids[2]: "failed"})
    sent = admin.get(ids[0])
    assert sent is not None
    assert (sent.status, sent.sent_at, sent.smtp_reply) == (
        "sent",
        T0 + 1,
        "250 2.0.0 Ok: queued as 1",
    )
    assert queue.renew("worker-a", [ids[0]], 60, now=T0 + 3) == 0  # its lease is given up
    assert sample(metrics, "doormail_mails_sent_total", kind="call") == 1


def test_a_mail_already_sent_is_not_sent_again_by_a_late_outcome(
    engine: Engine, queue: Queue, admin: Admin, metrics: Metrics
) -> None:
    queued = queue_one(engine, queue)
    queue.claim("worker-a", 10, 60, now=T0)
    assert mark_sent(queue, queued, "250 first", now=T0 + 1)
    recording = queue.recording("worker-b")
    try:
        assert recording.save([Outcome(queued, "sent", "250 second")], now=T0 + 2) == {}
    finally:
        recording.close()
    item = admin.get(queued)
    assert item is not None and (item.sent_at, item.smtp_reply) == (T0 + 1, "250 first")
    assert sample(metrics, "doormail_mails_sent_total", kind="call") == 1


def test_mail_still_waiting_past_its_deadline_expires(
    engine: Engine, queue: Queue, admin: Admin
) -> None:
    dead_worker = queue_one(engine, queue, deliver_in=60, recipient="a@example.com")
    never_tried = queue_one(engine, queue, now=T0 + 1, deliver_in=59, recipient="b@example.com")
    still_in_time = queue_one(engine, queue, now=T0 + 2, deliver_in=600, recipient="c@example.com")
    [claimed] = queue.claim("worker-that-dies", 1, 30, now=T0 + 50)
    assert claimed.id == dead_worker
    assert queue.expire_overdue(now=T0 + 61) == 1  # the dead worker's lease still runs
    assert queue.expire_overdue(now=T0 + 80) == 1
    statuses = {i: admin.get(i).status for i in (never_tried, dead_worker, still_in_time)}  # type: ignore[union-attr]
    assert statuses == {never_tried: "expired", dead_worker: "expired", still_in_time: "queued"}
    expired = admin.get(never_tried)
    assert expired is not None and "deliver_in" in (expired.last_error or "")


def test_two_workers_claiming_at_once_never_get_the_same_mail(engine: Engine, queue: Queue) -> None:
    queue_committed(engine, queue, [mail(f"r{n}@example.com") for n in range(200)], DAY, now=T0)
    claimed: dict[str, list[str]] = {"a": [], "b": []}

    def drain(owner: str) -> None:
        while batch := queue.claim(owner, 7, 60, now=T0 + 1):
            claimed[owner] += [c.id for c in batch]

    workers = [threading.Thread(target=drain, args=(owner,)) for owner in claimed]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    everything = claimed["a"] + claimed["b"]
    assert len(everything) == 200 and len(set(everything)) == 200


def test_next_due_is_the_earliest_queued_attempt(engine: Engine, queue: Queue) -> None:
    assert queue.next_due() is None
    queue_one(engine, queue, now=T0 + 9, recipient="a@example.com")
    queue_one(engine, queue, now=T0 + 3, recipient="b@example.com")
    assert queue.next_due() == T0 + 3


def test_mail_claimed_but_not_tried_is_given_back_as_it_was(
    engine: Engine, queue: Queue, admin: Admin
) -> None:
    queued = queue_one(engine, queue)
    queue.claim("worker-a", 10, 60, now=T0)
    assert queue.release("worker-b", [queued]) == 0  # not b's to give back
    assert queue.release("worker-a", [queued]) == 1
    item = admin.get(queued)
    assert item is not None and (item.status, item.attempts, item.next_attempt_at) == (
        "queued",
        0,
        T0,
    )
    assert [c.id for c in queue.claim("worker-b", 10, 60, now=T0 + 1)] == [queued]
