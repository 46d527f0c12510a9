"""The outbox as people see it: newest first in pages, by state, counts, and a failed or
expired mail sent again by hand; on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from doormail.outbox import Admin, InvalidQuery, NotRetryable, Queue, UnknownMessage
from tests.outbox.helpers import DAY, T0, mail, mark_failed, mark_sent, queue_committed, queue_one


def test_retry_queues_failed_mail_again_with_a_new_deadline(
    engine: Engine, queue: Queue, admin: Admin
) -> None:
    queued = queue_one(engine, queue, deliver_in=3600)
    queue.claim("worker-a", 10, 60, now=T0)
    mark_failed(queue, queued, "550 no such user", now=T0 + 1)
    item = admin.retry(queued, now=T0 + 7200)
    assert (item.status, item.attempts, item.next_attempt_at, item.deliver_by) == (
        "queued",
        0,
        T0 + 7200,
        T0 + 7200 + 3600,
    )
    assert [c.id for c in queue.claim("worker-a", 10, 60, now=T0 + 7200)] == [queued]


def test_retry_refuses_mail_that_is_not_failed_or_expired(
    engine: Engine, queue: Queue, admin: Admin
) -> None:
    queued = queue_one(engine, queue)
    with pytest.raises(NotRetryable, match="queued"):
        admin.retry(queued)
    with pytest.raises(UnknownMessage):
        admin.retry("no-such-id")
    with pytest.raises(UnknownMessage):
        admin.message("no-such-id")
    assert admin.get("no-such-id") is None


def test_outbox_lists_newest_first_in_pages(engine: Engine, queue: Queue, admin: Admin) -> None:
    ids = [queue_one(engine, queue, now=T0 + n, recipient=f"r{n}@example.com") for n in range(5)]
    first = admin.page(limit=2)
    second = admin.page(limit=2, cursor=first.next)
    third = admin.page(limit=2, cursor=second.next)
    listed = [item.id for page in (first, second, third) for item in page.items]
    assert listed == ids[::-1]
    assert third.next is None


def test_outbox_pages_do_not_skip_mail_queued_in_the_same_instant(
    engine: Engine, queue: Queue, admin: Admin
) -> None:
    items = queue_committed(
        engine, queue, [mail(f"r{n}@example.com") for n in range(5)], DAY, now=T0
    )
    seen, cursor = [], None
    while True:
        page = admin.page(limit=2, cursor=cursor)
        seen += [item.id for item in page.items]
        if page.next is None:
            break
        cursor = page.next
    assert sorted(seen) == sorted(item.id for item in items) and len(seen) == 5


def test_outbox_lists_by_status(engine: Engine, queue: Queue, admin: Admin) -> None:
    sent = queue_one(engine, queue, recipient="a@example.com")
    queued = queue_one(engine, queue, recipient="b@example.com", now=T0 + 100)
    queue.claim("worker-a", 1, 60, now=T0 + 50)
    mark_sent(queue, sent, "250 ok")
    assert [i.id for i in admin.page("sent").items] == [sent]
    assert [i.id for i in admin.page("queued").items] == [queued]
    assert admin.counts() == {
        "queued": 1,
        "sending": 0,
        "sent": 1,
        "failed": 0,
        "expired": 0,
        "held": 0,
    }


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
    admin: Admin, arguments: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidQuery) as error:
        admin.page(**arguments)  # type: ignore[arg-type]
    assert error.value.field == field
