"""The back-off between delivery attempts: growing, bounded, jittered, never past the deadline."""

from __future__ import annotations

import pytest

from doormail.delivery.retry import RetryPolicy


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
