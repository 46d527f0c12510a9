"""The certificate slots of the manual's Certificates subsection, as names and limits only (no
cryptography): the self-signed client certificate made at first start, three user certificate
+ private key sets, three CA certificate sets; what the API shows of one, and the error that
names the slot or setting a certificate cannot be used for."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

SELF_SIGNED = "self-signed"
USER_SLOTS = ("user1", "user2", "user3")
CA_SLOTS = ("ca1", "ca2", "ca3")
SLOTS = (SELF_SIGNED, *USER_SLOTS, *CA_SLOTS)

# A certificate chain with its key, or a CA set of a few dozen certificates, fits well.
MAX_PEM_BYTES = 64 * 1024
SELF_SIGNED_DAYS = 3650


class UnknownSlotError(LookupError):
    """A slot name that is none of self-signed, user1..3, ca1..3."""


class CertificateError(Exception):
    """A certificate or key that cannot be used, naming the slot or setting it is about."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class CertificateInfo:
    """What the API shows of a slot: the first (leaf) certificate, never the key."""

    slot: str
    empty: bool
    subject: str | None = None
    issuer: str | None = None
    fingerprint: str | None = None
    not_before: str | None = None
    not_after: str | None = None
    has_key: bool = False
    certificates: int = 0

    def public(self) -> dict[str, Any]:
        return asdict(self)


def is_slot(slot: str) -> bool:
    return slot in SLOTS
