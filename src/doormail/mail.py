"""The one type that crosses the durable hand-off: a finished message, ready for the outbox.
Deciding stages produce it; the outbox and delivery consume it and know nothing else."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OutgoingMessage:
    """One message to one recipient, as exact bytes with its `Message-ID` already fixed, so that
    every retry sends the same thing."""

    event_id: str
    kind: str  # one of placeholders.Kind; delivery only stores and shows it
    sender: str  # envelope MAIL FROM (smtp.from)
    recipient: str  # envelope RCPT TO: one address
    subject: str
    message_id: str
    data: bytes
