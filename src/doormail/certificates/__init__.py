"""The certificates of the SMTP connection: `slots` (their names, limits and errors, no
cryptography), `store` (the slots in the database and the TLS contexts built from them) and
`pem` (reading and making PEM text with the cryptography package, imported only when needed)."""

from doormail.certificates.slots import (
    CA_SLOTS,
    MAX_PEM_BYTES,
    SELF_SIGNED,
    SLOTS,
    USER_SLOTS,
    CertificateError,
    CertificateInfo,
    UnknownSlotError,
    is_slot,
)
from doormail.certificates.store import Certificates

__all__ = [
    "CA_SLOTS",
    "MAX_PEM_BYTES",
    "SELF_SIGNED",
    "SLOTS",
    "USER_SLOTS",
    "CertificateError",
    "CertificateInfo",
    "Certificates",
    "UnknownSlotError",
    "is_slot",
]
