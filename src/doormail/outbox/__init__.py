"""The durable queue between deciding and delivering, as Postfix's queue files are: finished
messages (exact bytes, fixed `Message-ID`) with their state, deadline, back-off and lease.
`queue` is the SQL of the two sides (enqueue; claim, renew, release, record, expire),
`transitions` what an attempt's outcome makes of a mail and the back-off (pure), `admin` what
people look at and do by hand (the listing, one entry, its bytes, a retry, the counts). It
stores and hands out mail; it never speaks SMTP."""

from doormail.outbox.admin import Admin, InvalidQuery, NotRetryable, Page, UnknownMessage
from doormail.outbox.items import OutboxError, OutboxItem
from doormail.outbox.queue import DIGEST_KINDS, Claimed, HeldMail, Hold, Queue, Recording
from doormail.outbox.transitions import FINISHED, STATUSES, Outcome, RetryPolicy, Status

__all__ = [
    "DIGEST_KINDS",
    "FINISHED",
    "STATUSES",
    "Admin",
    "Claimed",
    "HeldMail",
    "Hold",
    "InvalidQuery",
    "NotRetryable",
    "OutboxError",
    "OutboxItem",
    "Outcome",
    "Page",
    "Queue",
    "Recording",
    "RetryPolicy",
    "Status",
    "UnknownMessage",
]
