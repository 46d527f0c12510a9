"""What an attempt's outcome makes of a mail, without a database: sent is kept whoever reports
it, a failure only counts for the worker holding the lease, a temporary one comes back with a
back-off (growing, bounded, jittered, never past the deadline) or expires, a permanent one
fails."""

from __future__ import annotations

import pytest

from doormail.outbox.transitions import Attempted, Change, Outcome, RetryPolicy, next_change

NOW = 1_700_000_000.0
FIXED = RetryPolicy(floor=5, ceiling=600, jitter=0)


def sending(attempts: int = 1, deliver_by: float = NOW + 3600, owner: str = "a") -> Attempted:
    return Attempted("sending", attempts, deliver_by, owner)


def test_back_off_grows_with_each_attempt_from_the_floor() -> None:
    policy = RetryPolicy(floor=5, ceiling=600, factor=2, jitter=0)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]


def test_back_off_stops_growing_at_the_ceiling() -> None:
    policy = RetryPolicy(floor=5, ceiling=600, factor=2, jitter=0)
    assert policy.delay(8) == 600
    assert policy.delay(10_000) == 600


def test_jitter_spreads_retries_but_stays_between_floor_and_ceiling() -> None:
    low = RetryPolicy(floor=5, ceiling=600, jitter=0.1, random=lambda: 0.0)
    high = RetryPolicy(floor=5, ceiling=600, jitter=0.1, random=lambda: 1.0)
    assert low.delay(3) == pytest.approx(18)
    assert high.delay(3) == pytest.approx(22)
    assert low.delay(1) == 5  # never below the floor
    assert high.delay(20) == 600  # never above the ceiling


def test_next_attempt_is_the_back_off_after_now() -> None:
    policy = RetryPolicy(floor=5, ceiling=600, jitter=0)
    assert policy.next_attempt(2, now=1000.0, deliver_by=5000.0) == 1010.0


def test_last_attempt_is_placed_on_the_deadline_not_past_it() -> None:
    policy = RetryPolicy(floor=5, ceiling=600, jitter=0)
    assert policy.next_attempt(7, now=1000.0, deliver_by=1100.0) == 1100.0


def test_no_attempt_once_deliver_by_has_passed() -> None:
    policy = RetryPolicy(floor=5, ceiling=600, jitter=0)
    assert policy.next_attempt(1, now=1100.0, deliver_by=1100.0) is None
    assert policy.next_attempt(1, now=1200.0, deliver_by=1100.0) is None


def test_small_values_for_quick_retries_are_accepted() -> None:
    policy = RetryPolicy(floor=0.05, ceiling=0.2, jitter=0)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [0.05, 0.1, 0.2, 0.2]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"floor": 0}, "floor"),
        ({"floor": 10, "ceiling": 5}, "floor"),
        ({"factor": 0.5}, "factor"),
        ({"jitter": 1.5}, "jitter"),
    ],
)
def test_a_policy_that_cannot_work_is_refused(arguments: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**arguments)


def test_a_sent_mail_is_kept_sent_with_the_servers_reply() -> None:
    change = next_change(
        Outcome("m", "sent", "250 2.0.0 Ok"), sending(), owner="a", now=NOW, policy=FIXED
    )
    assert change == Change("sent", sent_at=NOW, reply="250 2.0.0 Ok")


def test_a_success_counts_even_from_a_worker_that_lost_its_lease() -> None:
    late = next_change(
        Outcome("m", "sent", "250 ok"), sending(owner="b"), owner="a", now=NOW, policy=FIXED
    )
    assert late is not None and late.status == "sent"
    again = Attempted("sent", 1, NOW + 3600, None)
    assert (
        next_change(Outcome("m", "sent", "250 ok"), again, owner=None, now=NOW, policy=FIXED)
        is None
    )


def test_a_temporary_failure_comes_back_after_the_back_off() -> None:
    outcome = Outcome("m", "temporary", "421 4.7.0 busy", "421 4.7.0 busy")
    change = next_change(outcome, sending(attempts=3), owner="a", now=NOW, policy=FIXED)
    assert change == Change(
        "queued", next_attempt_at=NOW + 20, reply="421 4.7.0 busy", error="421 4.7.0 busy"
    )


def test_a_temporary_failure_at_the_deadline_expires() -> None:
    outcome = Outcome("m", "temporary", "connection refused")
    change = next_change(outcome, sending(deliver_by=NOW), owner="a", now=NOW, policy=FIXED)
    assert change == Change("expired", error="connection refused")


def test_a_permanent_failure_fails_at_once() -> None:
    outcome = Outcome("m", "failed", "550 5.1.1 unknown", "550 5.1.1 unknown")
    change = next_change(outcome, sending(), owner="a", now=NOW, policy=FIXED)
    assert change == Change("failed", reply="550 5.1.1 unknown", error="550 5.1.1 unknown")


@pytest.mark.parametrize(
    "mail",
    [
        Attempted("sending", 1, NOW + 3600, "b"),  # another worker holds it now
        Attempted("queued", 1, NOW + 3600, None),  # given back, or retried by hand
        Attempted("sent", 1, NOW + 3600, None),  # another worker sent it meanwhile
    ],
)
def test_a_failure_reported_without_the_lease_changes_nothing(mail: Attempted) -> None:
    outcome = Outcome("m", "failed", "554 late")
    assert next_change(outcome, mail, owner="a", now=NOW, policy=FIXED) is None
