"""Every event is kept with what came of it (SPEC section 4): its mails, linked to the outbox
and in their state now, or the reason there was none; newest first, by type, time and outcome;
and for a resident's address, which events mailed it, which did not, and why."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from doormail.app import Service
from doormail.eventlog import EventLog, EventLogError
from doormail.mail import OutgoingMessage
from doormail.outbox import Queue
from doormail.pipeline.commit import Committer, Entry, Kept

MISSED = {"type": "call.ended", "called": "101", "answered": False}
ANSWERED = {"type": "call.ended", "called": "101", "answered": True}


def post(api: TestClient, event: dict[str, Any]) -> dict[str, Any]:
    reply = api.post("/api/events", json=event)
    assert reply.status_code == 202, reply.text
    answer: dict[str, Any] = reply.json()
    return answer


def test_an_event_is_kept_with_its_mails_linked_to_the_outbox(
    configured: Service, api: TestClient
) -> None:
    answer = post(api, {**MISSED, "id": "call-1", "at": "2026-11-29T14:15:16+00:00"})
    [kept] = configured.events.page().items
    assert (kept.event_id, kept.type, kept.device) == ("call-1", "call.ended", "Front door")
    assert kept.fields == {"called": ["101"], "answered": False, "direction": "outgoing"}
    assert kept.public()["at"] == "2026-11-29T14:15:16+00:00"
    assert [(m.id, m.to) for m in kept.emails] == [(m["id"], m["to"]) for m in answer["emails"]]
    assert kept.reason is None
    # The state is the outbox's now, not the one of the answer.
    configured.queue.claim("test", 10, 60)
    for mail in configured.events.page().items[0].emails:
        stored = configured.outbox.get(mail.id)
        assert stored is not None and mail.status == stored.status != "queued"


def test_an_event_without_mail_is_kept_with_the_reason(
    configured: Service, api: TestClient
) -> None:
    post(api, ANSWERED)
    [kept] = configured.events.page().items
    assert kept.emails == ()
    assert kept.reason == "email_on_call.send is missed and the call was answered"


def test_newest_first_page_by_page(configured: Service, api: TestClient) -> None:
    for minute in range(5):
        post(
            api,
            {"type": "device.rebooted", "id": f"r{minute}", "at": f"2026-11-29T10:0{minute}:00Z"},
        )
    first = configured.events.page(limit=2)
    assert [e.event_id for e in first.items] == ["r4", "r3"] and first.next is not None
    second = configured.events.page(limit=2, cursor=first.next)
    third = configured.events.page(limit=2, cursor=second.next)
    assert [e.event_id for e in second.items + third.items] == ["r2", "r1", "r0"]
    assert third.next is None


def test_filtered_by_type_time_and_outcome(configured: Service, api: TestClient) -> None:
    post(api, {**MISSED, "id": "missed", "at": "2026-11-29T10:00:00Z"})
    post(api, {**ANSWERED, "id": "answered", "at": "2026-11-29T11:00:00Z"})
    post(api, {"type": "tamper.activated", "id": "tamper", "at": "2026-11-29T12:00:00Z"})

    def ids(**query: Any) -> list[str]:
        return [event.event_id for event in configured.events.page(**query).items]

    assert ids(type="call.ended") == ["answered", "missed"]
    assert ids(outcome="none") == ["tamper", "answered"]
    assert ids(outcome="mail") == ["missed"]
    eleven = datetime(2026, 11, 29, 11, tzinfo=UTC).timestamp()
    assert ids(since=eleven) == ["tamper", "answered"]


def test_an_address_finds_the_events_that_mailed_it_and_those_that_did_not(
    configured: Service, api: TestClient
) -> None:
    post(api, {**MISSED, "id": "mailed"})
    post(api, {**ANSWERED, "id": "refused"})
    post(api, {"type": "call.ended", "called": "999", "answered": False, "id": "elsewhere"})
    found = configured.events.page(address="ALICE@example.com").items
    assert [(e.event_id, e.for_address and e.for_address.mailed) for e in found] == [
        ("refused", False),
        ("mailed", True),
    ]
    refused = found[0].for_address
    assert refused is not None
    assert refused.why == "email_on_call.send is missed and the call was answered"
    # An address that only a similar one contains is not matched.
    assert configured.events.page(address="lice@example.com").items == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"type": "call"}, "type"),
        ({"outcome": "maybe"}, "outcome"),
        ({"address": "a@x.org, b@x.org"}, "address"),
        ({"limit": 0}, "limit"),
        ({"cursor": "nonsense"}, "cursor"),
    ],
)
def test_a_bad_query_names_its_field(service: Service, query: dict[str, Any], field: str) -> None:
    with pytest.raises(EventLogError) as refused:
        service.events.page(**query)
    assert refused.value.field == field


def test_the_list_reads_alike_on_sqlite_and_postgresql(engine: Engine) -> None:
    write = Committer(engine, Queue(engine))

    def commit(event_id: str, at: float, *recipients: str, concerned: tuple[str, ...]) -> None:
        messages = tuple(
            OutgoingMessage(event_id, "call", "door@example.org", to, "Call", f"<{to}>", b"x")
            for to in recipients
        )
        reason = None if recipients else "email_on_call.send is never"
        kept = Kept(at, "Front door", '{"called": ["101"]}', concerned)
        asyncio.run(write.commit(Entry(event_id, "call.ended", messages, 3600, reason, kept=kept)))

    commit("mailed", 100.0, "a_b%c@x.org", concerned=("a_b%c@x.org",))
    commit("refused", 200.0, concerned=("A_B%C@x.org", "other@x.org"))
    commit("unrelated", 300.0, concerned=("aXb%c@x.org",))
    log = EventLog(engine)
    found = log.page(address="a_b%c@X.org")
    # LIKE's wildcards in an address stand for themselves.
    assert [(e.event_id, e.for_address.mailed if e.for_address else None) for e in found.items] == [
        ("refused", False),
        ("mailed", True),
    ]
    assert [e.event_id for e in log.page(outcome="none", since=150.0).items] == [
        "unrelated",
        "refused",
    ]
    assert log.page(outcome="mail").items[0].fields == {"called": ["101"]}
