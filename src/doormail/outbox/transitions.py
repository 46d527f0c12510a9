"""What becomes of a mail (pure, no database): its states, the change an attempt's outcome makes
to it, and when a temporarily failed mail is tried again — a back-off growing with the number
of attempts between a floor and a ceiling, with a little jitter, never past its deadline."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

# queued → sending → sent | failed | expired (SPEC section 8); held (flood control, section 9)
# until its digest goes out, then as its digest ends.
Status = Literal["queued", "sending", "sent", "failed", "expired", "held"]
STATUSES: tuple[Status, ...] = ("queued", "sending", "sent", "failed", "expired", "held")
# The states a mail may be sent again from by hand.
RETRYABLE: tuple[Status, ...] = ("failed", "expired")
# The states nothing more happens in by itself: what retention deletes when old enough.
FINISHED: tuple[Status, ...] = ("sent", *RETRYABLE)


@dataclass(frozen=True)
class RetryPolicy:
    """Back-off of `floor * factor ** (attempts - 1)` seconds, capped at `ceiling`.

    Jitter spreads the retries of many mails that failed together (a server that was down) so
    that they do not all come back in the same second."""

    floor: float = 5.0
    ceiling: float = 600.0
    factor: float = 2.0
    jitter: float = 0.1
    random: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.floor <= self.ceiling:
            raise ValueError("the back-off needs 0 < floor <= ceiling")
        if self.factor < 1:
            raise ValueError("the back-off factor must be at least 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("the back-off jitter must be a fraction in [0, 1)")

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failed attempt (1 for the first)."""
        exponent = max(attempts - 1, 0)
        # Capping the exponent keeps `factor ** exponent` finite for mails tried very often.
        base = self.floor * self.factor ** min(exponent, 64)
        spread = 1 + self.jitter * (2 * self.random() - 1)
        return min(max(base * spread, self.floor), self.ceiling)

    def next_attempt(self, attempts: int, now: float, deliver_by: float) -> float | None:
        """When to try again, or None when the deadline has passed and the mail expires.

        The last attempt is placed on the deadline itself rather than skipped, so a server that
        comes back just before `deliver_by` still gets the mail."""
        if now >= deliver_by:
            return None
        return min(now + self.delay(attempts), deliver_by)


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: `sent` (text is the server's reply), `temporary` (retry with
    back-off until the deadline), `failed` (final) or `unreachable` (the server did not answer:
    the mail waits for it, due as it was and the claim not counted as an attempt); `reply`
    keeps the server's own words."""

    id: str
    result: Literal["sent", "temporary", "failed", "unreachable"]
    text: str
    reply: str | None = None


@dataclass(frozen=True)
class Attempted:
    """What an outcome is judged against: the mail as it stands when the outcome is saved."""

    status: Status
    attempts: int
    deliver_by: float
    lease_owner: str | None


@dataclass(frozen=True)
class Change:
    """A mail's new state; a value left None keeps what the mail had (an earlier reply, say)."""

    status: Status
    next_attempt_at: float | None = None
    sent_at: float | None = None
    reply: str | None = None
    error: str | None = None
    # The claim is taken back: the mail was not tried (the server did not answer).
    uncounted: bool = False


def next_change(
    outcome: Outcome,
    mail: Attempted,
    *,
    owner: str | None,
    now: float,
    policy: RetryPolicy,
) -> Change | None:
    """What `outcome` makes of `mail`, or None when it changes nothing. A success is always
    kept, because the mail did go out; a failure only changes mail still `sending` (under
    `owner`'s lease when given), so that a late worker cannot undo another's work. A temporary
    failure goes back to `queued` with back-off, or to `expired` once the deadline has passed; a
    mail the server was unreachable for goes back to `queued` as it was (the deadline still
    expires it)."""
    if outcome.result == "sent":
        if mail.status == "sent":
            return None
        return Change("sent", sent_at=now, reply=outcome.text)
    if mail.status != "sending" or (owner is not None and mail.lease_owner != owner):
        return None
    if outcome.result == "unreachable":
        return Change("queued", error=outcome.text, uncounted=True)
    retry_at = None
    if outcome.result == "temporary":
        retry_at = policy.next_attempt(mail.attempts, now, mail.deliver_by)
    if retry_at is not None:
        return Change("queued", next_attempt_at=retry_at, reply=outcome.reply, error=outcome.text)
    final: Status = "failed" if outcome.result == "failed" else "expired"
    return Change(final, reply=outcome.reply, error=outcome.text)
