"""The outbox's states, leases, back-off and deadlines, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from doormail.delivery.retry import RetryPolicy
from doormail.mail import OutgoingMessage
from doormail.metrics import Metrics
from doormail.outbox import (
    InvalidQuery,
    NotRetryable,
    Outbox,
    OutboxError,
    Outcome,
    UnknownMessage,
)
from doormail.store import open_engine, upgrade
from tests.conftest import require_service

POSTGRES_URL = os.environ.get(
    "DOORMAIL_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/postgres"
)
T0 = 1_700_000_000.0
DAY = 86400.0


@pytest.fixture(scope="module")
def postgres_engine() -> Iterator[Engine]:
    """A database of its own on the PostgreSQL server, dropped afterwards."""
    name = f"doormail_outbox_{uuid.uuid4().hex[:12]}"
    admin = open_engine(POSTGRES_URL)
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception:  # no server, no rights: the same answer for the test
        admin.dispose()
        require_service(f"PostgreSQL at {POSTGRES_URL}")
    engine = open_engine(make_url(POSTGRES_URL).set(database=name).render_as_string(False))
    upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    if request.param == "sqlite":
        built = open_engine(f"sqlite:///{tmp_path / 'outbox.sqlite3'}")
        upgrade(built)
        return built
    shared: Engine = request.getfixturevalue("postgres_engine")
    with shared.begin() as connection:
        connection.execute(text("DELETE FROM outbox"))
    return shared


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def outbox(engine: Engine, metrics: Metrics) -> Outbox:
    return Outbox(engine, policy=RetryPolicy(floor=5, ceiling=600, jitter=0), metrics=metrics)


def mail(
    recipient: str = "alice@example.com", event_id: str = "ev-1", kind: str = "call"
) -> OutgoingMessage:
    return OutgoingMessage(
        event_id=event_id,
        kind=kind,
        sender="door@example.org",
        recipient=recipient,
        subject=f"Call for {recipient}",
        message_id=f"<{uuid.uuid4().hex}@doormail>",
        data=f"Subject: call\r\nTo: {recipient}\r\n\r\nRinging.\r\n".encode(),
    )


def queue_one(outbox: Outbox, now: float = T0, deliver_in: float = DAY, **kwargs: str) -> str:
    return outbox.enqueue_committed([mail(**kwargs)], deliver_in, now=now)[0].id


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_queued_mail_is_due_at_once_and_expires_deliver_in_later(outbox: Outbox) -> None:
    [item] = outbox.enqueue_committed([mail()], DAY, now=T0)
    assert item.status == "queued"
    assert (item.created_at, item.next_attempt_at, item.deliver_by) == (T0, T0, T0 + DAY)
    assert (item.to, item.kind, item.attempts, item.sent_at) == (
        "alice@example.com",
        "call",
        0,
        None,
    )


def test_the_message_is_kept_as_exact_bytes(outbox: Outbox) -> None:
    message = mail()
    [item] = outbox.enqueue_committed([message], DAY, now=T0)
    assert outbox.message(item.id) == message.data


def test_the_same_event_and_recipient_is_queued_only_once(outbox: Outbox, metrics: Metrics) -> None:
    first = outbox.enqueue_committed([mail("a@example.com"), mail("b@example.com")], DAY)
    again = outbox.enqueue_committed([mail("a@example.com"), mail("c@example.com")], DAY)
    assert again[0].id == first[0].id
    assert outbox.counts()["queued"] == 3
    assert sample(metrics, "doormail_mails_queued_total", kind="call") == 3


def test_mail_enqueued_in_a_transaction_that_rolls_back_is_not_queued(
    outbox: Outbox, engine: Engine
) -> None:
    with pytest.raises(RuntimeError), engine.begin() as connection:
        outbox.enqueue(connection, [mail()], DAY)
        raise RuntimeError("the event could not be stored")
    assert outbox.counts()["queued"] == 0


def test_deliver_in_must_be_positive(outbox: Outbox) -> None:
    with pytest.raises(OutboxError) as error:
        outbox.enqueue_committed([mail()], 0)
    assert error.value.field == "deliver_in"


def test_claim_leases_due_mail_to_one_worker(outbox: Outbox) -> None:
    queued = queue_one(outbox)
    [claimed] = outbox.claim("worker-a", 10, 60, now=T0 + 1)
    assert (claimed.id, claimed.attempts, claimed.recipient) == (queued, 1, "alice@example.com")
    assert claimed.data == outbox.message(queued)
    assert outbox.claim("worker-b", 10, 60, now=T0 + 2) == []
    item = outbox.get(queued)
    assert item is not None and item.status == "sending"


def test_mail_waiting_for_its_back_off_is_not_claimed(outbox: Outbox) -> None:
    queued = queue_one(outbox)
    outbox.claim("worker-a", 10, 60, now=T0)
    outbox.mark_temporary(queued, "451 4.3.0 try again later", now=T0 + 1)
    assert outbox.claim("worker-a", 10, 60, now=T0 + 5) == []
    assert [c.id for c in outbox.claim("worker-a", 10, 60, now=T0 + 6)] == [queued]


def test_claim_takes_at_most_the_batch_size_oldest_due_first(outbox: Outbox) -> None:
    ids = [queue_one(outbox, now=T0 + n, recipient=f"r{n}@example.com") for n in range(5)]
    batch = outbox.claim("worker-a", 3, 60, now=T0 + 10)
    assert [c.id for c in batch] == ids[:3]
    assert [c.id for c in outbox.claim("worker-a", 3, 60, now=T0 + 10)] == ids[3:]


def test_a_claimed_mail_whose_lease_ran_out_is_claimed_again(outbox: Outbox) -> None:
    queued = queue_one(outbox)
    outbox.claim("worker-that-dies", 10, 30, now=T0)
    assert outbox.claim("worker-b", 10, 30, now=T0 + 29) == []
    [again] = outbox.claim("worker-b", 10, 30, now=T0 + 30)
    assert (again.id, again.attempts) == (queued, 2)


def test_a_renewed_lease_keeps_the_mail_from_other_workers(outbox: Outbox) -> None:
    queued = queue_one(outbox)
    outbox.claim("worker-a", 10, 30, now=T0)
    assert outbox.renew("worker-a", [queued], 30, now=T0 + 20) == 1
    assert outbox.renew("worker-b", [queued], 30, now=T0 + 20) == 0
    assert outbox.claim("worker-b", 10, 30, now=T0 + 40) == []
    assert len(outbox.claim("worker-b", 10, 30, now=T0 + 50)) == 1


def test_sent_mail_keeps_the_server_reply_and_the_time(outbox: Outbox, metrics: Metrics) -> None:
    queued = queue_one(outbox)
    outbox.claim("worker-a", 10, 60, now=T0)
    assert outbox.mark_sent(queued, "250 2.0.0 Ok: queued as 4Xyz", now=T0 + 0.2)
    item = outbox.get(queued)
    assert item is not None
    assert (item.status, item.sent_at, item.smtp_reply) == (
        "sent",
        T0 + 0.2,
        "250 2.0.0 Ok: queued as 4Xyz",
    )
    assert outbox.claim("worker-a", 10, 60, now=T0 + DAY) == []
    assert sample(metrics, "doormail_mails_sent_total", kind="call") == 1
    assert sample(metrics, "doormail_delivery_seconds_bucket", le="0.25") == 1


def test_temporary_failures_retry_with_growing_back_off(outbox: Outbox) -> None:
    queued = queue_one(outbox)
    now, waits = T0, []
    for _ in range(4):
        [claimed] = outbox.claim("worker-a", 10, 60, now=now)
        assert outbox.mark_temporary(claimed.id, "421 4.7.0 busy", now=now) == "queued"
        item = outbox.get(queued)
        assert item is not None
        waits.append(item.next_attempt_at - now)
        now = item.next_attempt_at
    assert waits == [5, 10, 20, 40]
    last = outbox.get(queued)
    assert last is not None and (last.last_error, last.attempts) == ("421 4.7.0 busy", 4)


def test_a_temporary_failure_past_the_deadline_expires_the_mail(
    outbox: Outbox, metrics: Metrics
) -> None:
    queued = queue_one(outbox, deliver_in=60)
    outbox.claim("worker-a", 10, 60, now=T0 + 58)
    assert outbox.mark_temporary(queued, "connection refused", now=T0 + 58) == "queued"
    item = outbox.get(queued)
    assert item is not None and item.next_attempt_at == T0 + 60  # the last try, on the deadline
    outbox.claim("worker-a", 10, 60, now=T0 + 60)
    assert outbox.mark_temporary(queued, "connection refused", now=T0 + 60.5) == "expired"
    item = outbox.get(queued)
    assert item is not None and (item.status, item.last_error) == ("expired", "connection refused")
    assert sample(metrics, "doormail_mails_expired_total", kind="call") == 1


def test_a_permanent_failure_fails_at_once_with_the_server_text(
    outbox: Outbox, metrics: Metrics
) -> None:
    queued = queue_one(outbox)
    outbox.claim("worker-a", 10, 60, now=T0)
    reply = "550 5.1.1 <alice@example.com>: Recipient address rejected"
    assert outbox.mark_failed(queued, reply, reply=reply, now=T0 + 1)
    item = outbox.get(queued)
    assert item is not None and (item.status, item.last_error, item.smtp_reply) == (
        "failed",
        reply,
        reply,
    )
    assert outbox.claim("worker-a", 10, 60, now=T0 + DAY - 1) == []
    assert sample(metrics, "doormail_mails_failed_total", kind="call") == 1


def test_a_worker_that_lost_its_lease_cannot_undo_the_next_workers_outcome(
    outbox: Outbox,
) -> None:
    queued = queue_one(outbox)
    outbox.claim("slow-worker", 10, 30, now=T0)
    outbox.claim("worker-b", 10, 30, now=T0 + 31)
    assert outbox.mark_temporary(queued, "timeout", owner="slow-worker", now=T0 + 40) is None
    assert outbox.mark_sent(queued, "250 ok", now=T0 + 41)
    assert not outbox.mark_failed(queued, "late 554", owner="worker-b", now=T0 + 42)
    item = outbox.get(queued)
    assert item is not None and item.status == "sent"


def test_outcomes_of_a_batch_are_recorded_together(outbox: Outbox) -> None:
    ids = [queue_one(outbox, recipient=f"r{n}@example.com") for n in range(3)]
    outbox.claim("worker-a", 10, 60, now=T0)
    statuses = outbox.record(
        [
            Outcome(ids[0], "sent", "250 ok"),
            Outcome(ids[1], "temporary", "452 4.2.2 mailbox full"),
            Outcome(ids[2], "failed", "554 5.7.1 relay denied"),
        ],
        owner="worker-a",
        now=T0 + 1,
    )
    assert statuses == {ids[0]: "sent", ids[1]: "queued", ids[2]: "failed"}


def test_mail_still_waiting_past_its_deadline_expires(outbox: Outbox) -> None:
    dead_worker = queue_one(outbox, deliver_in=60, recipient="a@example.com")
    never_tried = queue_one(outbox, now=T0 + 1, deliver_in=59, recipient="b@example.com")
    still_in_time = queue_one(outbox, now=T0 + 2, deliver_in=600, recipient="c@example.com")
    [claimed] = outbox.claim("worker-that-dies", 1, 30, now=T0 + 50)
    assert claimed.id == dead_worker
    assert outbox.expire_overdue(now=T0 + 61) == 1  # the dead worker's lease still runs
    assert outbox.expire_overdue(now=T0 + 80) == 1
    statuses = {i: outbox.get(i).status for i in (never_tried, dead_worker, still_in_time)}  # type: ignore[union-attr]
    assert statuses == {never_tried: "expired", dead_worker: "expired", still_in_time: "queued"}
    expired = outbox.get(never_tried)
    assert expired is not None and "deliver_in" in (expired.last_error or "")


def test_retry_queues_failed_mail_again_with_a_new_deadline(outbox: Outbox) -> None:
    queued = queue_one(outbox, deliver_in=3600)
    outbox.claim("worker-a", 10, 60, now=T0)
    outbox.mark_failed(queued, "550 no such user", now=T0 + 1)
    item = outbox.retry(queued, now=T0 + 7200)
    assert (item.status, item.attempts, item.next_attempt_at, item.deliver_by) == (
        "queued",
        0,
        T0 + 7200,
        T0 + 7200 + 3600,
    )
    assert [c.id for c in outbox.claim("worker-a", 10, 60, now=T0 + 7200)] == [queued]


def test_retry_refuses_mail_that_is_not_failed_or_expired(outbox: Outbox) -> None:
    queued = queue_one(outbox)
    with pytest.raises(NotRetryable, match="queued"):
        outbox.retry(queued)
    with pytest.raises(UnknownMessage):
        outbox.retry("no-such-id")
    with pytest.raises(UnknownMessage):
        outbox.message("no-such-id")
    assert outbox.get("no-such-id") is None


def test_outbox_lists_newest_first_in_pages(outbox: Outbox) -> None:
    ids = [queue_one(outbox, now=T0 + n, recipient=f"r{n}@example.com") for n in range(5)]
    first = outbox.list(limit=2)
    second = outbox.list(limit=2, cursor=first.next)
    third = outbox.list(limit=2, cursor=second.next)
    listed = [item.id for page in (first, second, third) for item in page.items]
    assert listed == ids[::-1]
    assert third.next is None


def test_outbox_pages_do_not_skip_mail_queued_in_the_same_instant(outbox: Outbox) -> None:
    items = outbox.enqueue_committed([mail(f"r{n}@example.com") for n in range(5)], DAY, now=T0)
    seen, cursor = [], None
    while True:
        page = outbox.list(limit=2, cursor=cursor)
        seen += [item.id for item in page.items]
        if page.next is None:
            break
        cursor = page.next
    assert sorted(seen) == sorted(item.id for item in items) and len(seen) == 5


def test_outbox_lists_by_status(outbox: Outbox) -> None:
    sent = queue_one(outbox, recipient="a@example.com")
    queued = queue_one(outbox, recipient="b@example.com", now=T0 + 100)
    outbox.claim("worker-a", 1, 60, now=T0 + 50)
    outbox.mark_sent(sent, "250 ok")
    assert [i.id for i in outbox.list("sent").items] == [sent]
    assert [i.id for i in outbox.list("queued").items] == [queued]
    assert outbox.counts() == {"queued": 1, "sending": 0, "sent": 1, "failed": 0, "expired": 0}


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"status": "lost"}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": 100_000}, "limit"),
        ({"cursor": "not a cursor!"}, "cursor"),
        ({"cursor": "bm8tc2VwYXJhdG9y"}, "cursor"),
    ],
)
def test_a_bad_listing_names_the_field(
    outbox: Outbox, arguments: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidQuery) as error:
        outbox.list(**arguments)  # type: ignore[arg-type]
    assert error.value.field == field


def test_two_workers_claiming_at_once_never_get_the_same_mail(outbox: Outbox) -> None:
    outbox.enqueue_committed([mail(f"r{n}@example.com") for n in range(200)], DAY, now=T0)
    claimed: dict[str, list[str]] = {"a": [], "b": []}

    def drain(owner: str) -> None:
        while batch := outbox.claim(owner, 7, 60, now=T0 + 1):
            claimed[owner] += [c.id for c in batch]

    workers = [threading.Thread(target=drain, args=(owner,)) for owner in claimed]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    everything = claimed["a"] + claimed["b"]
    assert len(everything) == 200 and len(set(everything)) == 200


def test_next_due_is_the_earliest_queued_attempt(outbox: Outbox) -> None:
    assert outbox.next_due() is None
    queue_one(outbox, now=T0 + 9, recipient="a@example.com")
    queue_one(outbox, now=T0 + 3, recipient="b@example.com")
    assert outbox.next_due() == T0 + 3


def test_mail_claimed_but_not_tried_is_given_back_as_it_was(outbox: Outbox) -> None:
    queued = queue_one(outbox)
    outbox.claim("worker-a", 10, 60, now=T0)
    assert outbox.release("worker-b", [queued]) == 0  # not b's to give back
    assert outbox.release("worker-a", [queued]) == 1
    item = outbox.get(queued)
    assert item is not None and (item.status, item.attempts, item.next_attempt_at) == (
        "queued",
        0,
        T0,
    )
    assert [c.id for c in outbox.claim("worker-b", 10, 60, now=T0 + 1)] == [queued]
