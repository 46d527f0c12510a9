"""When a temporarily failed mail is tried again: a small pure policy, growing with the number of
attempts between a floor and a ceiling, with a little jitter, and never past the mail's deadline."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


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
