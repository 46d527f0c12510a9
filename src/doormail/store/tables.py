"""The tables, in SQLAlchemy Core. Times are UNIX seconds (floats): the same on SQLite and
PostgreSQL, and cheap to compare in the outbox's claim query."""

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

settings = Table(
    "settings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("document", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("password_hash", String(256), nullable=False),
    # Raised by logout and a password change: a session made under an older epoch is over.
    Column("session_epoch", Integer, nullable=False, default=0, server_default="0"),
)

tokens = Table(
    "tokens",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("scope", String(16), nullable=False, default="events", server_default="admin"),
    Column("last_used_at", Float),
)

certificates = Table(
    "certificates",
    metadata,
    Column("slot", String(16), primary_key=True),
    Column("certificate", Text, nullable=False),
    Column("private_key", Text, nullable=False, default=""),
    Column("updated_at", Float, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("name", Text, nullable=False, default=""),
    Column("email", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
)

# Every number, card, Bluetooth ID and fingerprint ID of a user, one row each, in the user's
# order. An event's look-ups are answered from the list in memory (users/index.py, built from
# these rows); the index by value serves the shared-number check.
user_identifiers = Table(
    "user_identifiers",
    metadata,
    Column("user_id", String(128), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("value", String(256), nullable=False),
    Column("position", Integer, nullable=False, default=0),
    Index("ix_user_identifiers_kind_value", "kind", "value"),
    Index("ix_user_identifiers_user", "user_id"),
)

events = Table(
    "events",
    metadata,
    Column("id", String(256), primary_key=True),
    Column("type", String(64), nullable=False),
    Column("received_at", Float, nullable=False),
    Column("result", Text, nullable=False),
    # When it happened, where, and its own fields (JSON): what the events list shows.
    Column("at", Float),
    Column("device", String(256)),
    Column("fields", Text),
    # The addresses it concerns, lower case, each between commas (",a@x.org,b@y.org,"), so that
    # one LIKE finds an address's events: its mails' recipients, or, with no mail, those it
    # would have reached.
    Column("addresses", Text, nullable=False, default="", server_default=""),
    # How many mails it queued (0: its answer gives the reason).
    Column("mails", Integer, nullable=False, default=0, server_default="0"),
    Index("ix_events_at", "at", "id"),
    # Retention deletes the oldest events in small batches (storage.keep_events_days).
    Index("ix_events_received", "received_at"),
)

# Calls still ringing: a call's snapshots span from its ringing to its end, and the ringing and
# the end arrive as two events (call_id is the intercom's, so it is unique per device only).
calls = Table(
    "calls",
    metadata,
    Column("device", String(256), primary_key=True),
    Column("call_id", String(256), primary_key=True),
    Column("ringing_at", Float, nullable=False),
    Index("ix_calls_ringing_at", "ringing_at"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("event_id", String(256), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("recipient", String(512), nullable=False),
    Column("sender", String(512), nullable=False),
    Column("subject", Text, nullable=False),
    Column("message_id", String(512), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("deliver_by", Float, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("sent_at", Float),
    Column("last_error", Text),
    Column("smtp_reply", Text),
    Column("lease_owner", String(128)),
    Column("lease_until", Float),
    # Flood control: a `held` mail's digest or burst summary (`hold_group`, the event id the
    # digest gets) and, once the digest is made, the digest's own outbox id.
    Column("hold_group", String(512)),
    Column("digest_id", String(64)),
    UniqueConstraint("event_id", "recipient", name="uq_outbox_event_recipient"),
    Index("ix_outbox_due", "status", "next_attempt_at"),
    Index("ix_outbox_created", "created_at"),
    Index("ix_outbox_recipient_created", "recipient", "created_at"),
    Index("ix_outbox_hold_group", "hold_group"),
    Index("ix_outbox_digest", "digest_id"),
    # The listing by state, newest first, and retention's oldest finished mail, read a few rows
    # of this index however many sent rows there are.
    Index("ix_outbox_status_created", "status", "created_at"),
)

# Denied accesses at each device over the last minutes (flood control's access_denied_burst),
# and the burst each device is collecting now: the summary's event id and its first attempt.
denied_accesses = Table(
    "denied_accesses",
    metadata,
    Column("device", String(256), nullable=False),
    Column("at", Float, nullable=False),
    Index("ix_denied_accesses_device_at", "device", "at"),
)

bursts = Table(
    "bursts",
    metadata,
    Column("device", String(256), primary_key=True),
    Column("hold_group", String(512), nullable=False),
    Column("first_at", Float, nullable=False),
)

# The exact bytes of each outbox message, apart from its state: claiming and recording an
# outcome rewrite the outbox row, and should not rewrite the message with it.
outbox_messages = Table(
    "outbox_messages",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("message", LargeBinary, nullable=False),
)

# The SMTP server as every worker process sees it (one row, id 1): up, or unreachable since a
# moment, with the last error and when it is next to be probed. Shared through the database so
# that several workers on PostgreSQL make one probe between them, not one each.
smtp_server = Table(
    "smtp_server",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("state", String(16), nullable=False),
    Column("since", Float),
    Column("last_error", Text),
    Column("hint", Text),
    Column("probes", Integer, nullable=False, default=0),
    Column("next_probe_at", Float),
    Column("updated_at", Float, nullable=False),
)


# The devices of SPEC 11, each one JSON document (validated by doormail.devices.model).
devices = Table(
    "devices",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("document", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# What an event source keeps between pulls (a 2N intercom's log cursor, open calls, held
# credentials), written after the events it caused are committed.
source_state = Table(
    "source_state",
    metadata,
    Column("source", String(128), primary_key=True),
    Column("state", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Which process follows each event source: one at a time, until its lease runs out.
source_leases = Table(
    "source_leases",
    metadata,
    Column("source", String(128), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("expires_at", Float, nullable=False),
)

# One counter per kind of state every process shares (settings, certificates, users), raised in
# the transaction that changes it: another process reads the counter, not the state, to see that
# what it keeps (the validated settings, TLS contexts) must be read again.
changes = Table(
    "changes",
    metadata,
    Column("topic", String(32), primary_key=True),
    Column("counter", BigInteger, nullable=False, default=0, server_default="0"),
)
