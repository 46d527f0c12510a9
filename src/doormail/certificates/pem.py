"""Reading and making PEM certificates and keys (the cryptography package): validating what is
uploaded into a certificate slot, describing a certificate for the API, and generating the
self-signed client certificate. Imported only when such work is asked for, so the long-running
service does not keep the X.509 library resident while it merely sends mail."""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from doormail.certificates.slots import (
    CA_SLOTS,
    MAX_PEM_BYTES,
    SELF_SIGNED_DAYS,
    CertificateError,
    CertificateInfo,
)

# A line that begins or ends a PEM block (RFC 7468), white space after it allowed.
_MARKER = re.compile(r"-----(BEGIN|END) ([A-Z0-9 ]+)-----", re.ASCII)
_KEY_LABELS = ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY")
_SUPPORTED_KEYS = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)
_DECRYPT_HINT = "openssl pkey -in key.pem -out key-plain.pem"


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, as AA:BB:… (the form Postfix logs)."""
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def normalised(slot: str, pem: str | bytes) -> tuple[str, str]:
    """`pem` checked for `slot`, as stored: the certificates (leaf first), then a PKCS#8 key
    (empty for a CA set)."""
    certificates, key = _parse(slot, pem)
    certificate_pem = "".join(
        c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates
    )
    return certificate_pem, "" if key is None else _pkcs8(key)


def names(der: bytes) -> str:
    """Who a DER certificate (what a TLS peer presented) is for and who issued it."""
    certificate = x509.load_der_x509_certificate(der)
    subject = certificate.subject.rfc4514_string()
    issuer = certificate.issuer.rfc4514_string()
    return f"subject {subject}, issuer {issuer}"


def info(slot: str, certificate_pem: str, has_key: bool) -> CertificateInfo:
    certificates = x509.load_pem_x509_certificates(certificate_pem.encode())
    leaf = certificates[0]
    return CertificateInfo(
        slot=slot,
        empty=False,
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        fingerprint=fingerprint(leaf),
        not_before=leaf.not_valid_before_utc.isoformat(),
        not_after=leaf.not_valid_after_utc.isoformat(),
        has_key=has_key,
        certificates=len(certificates),
    )


def _parse(slot: str, pem: str | bytes) -> tuple[list[x509.Certificate], Any]:
    """The certificates (leaf first) and the private key in `pem`, checked for `slot`."""
    blocks = _blocks(_text(slot, pem))
    if not blocks:
        raise CertificateError(
            slot, "the body is not PEM: expected -----BEGIN CERTIFICATE----- blocks"
        )
    certificates: list[x509.Certificate] = []
    keys: list[Any] = []
    for number, (label, block) in enumerate(blocks, start=1):
        if label in ("CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"):
            certificates.append(_certificate(slot, number, block))
        elif label in _KEY_LABELS:
            keys.append(_key(slot, block))
        else:
            raise CertificateError(
                slot,
                f"PEM block {number} is a {label}; only certificates and a private key belong here",
            )
    if not certificates:
        raise CertificateError(slot, "no certificate found in the PEM text")
    if slot in CA_SLOTS:
        if keys:
            raise CertificateError(
                slot, "a CA certificate set holds certificates only; remove the private key"
            )
        return certificates, None
    if not keys:
        raise CertificateError(
            slot, "a user certificate needs its private key in the same PEM text; none was found"
        )
    if len(keys) > 1:
        raise CertificateError(slot, f"found {len(keys)} private keys; upload exactly one")
    return _leaf_first(slot, certificates, keys[0]), keys[0]


def _blocks(text: str) -> list[tuple[str, str]]:
    """The (label, text) of each PEM block in `text`, from its BEGIN line to its END marker,
    read line by line in linear time. Text around the blocks is skipped; a BEGIN line without
    an END line of its label after it is skipped too, and what follows it is read on.
    (A regular expression that looked for each BEGIN's END took quadratic time: 23 s on
    288 KB of BEGIN lines.)"""
    markers: list[tuple[str, str, int, int]] = []  # BEGIN or END, label, start, end
    last_end: dict[str, int] = {}
    start = 0
    for line in text.split("\n"):
        marker = _MARKER.fullmatch(line.rstrip()) if line.startswith("-----") else None
        if marker is not None:
            kind, label = marker.groups()
            markers.append((kind, label, start, start + marker.end()))
            if kind == "END":
                last_end[label] = start
        start += len(line) + 1
    blocks: list[tuple[str, str]] = []
    opened: tuple[str, int] | None = None
    for kind, label, begin, end in markers:
        if opened is None:
            if kind == "BEGIN" and last_end.get(label, -1) > begin:
                opened = (label, begin)
        elif kind == "END" and label == opened[0]:
            blocks.append((label, text[opened[1] : end]))
            opened = None
    return blocks


def _text(slot: str, pem: str | bytes) -> str:
    if len(pem) > MAX_PEM_BYTES:
        raise CertificateError(slot, f"the PEM text is larger than {MAX_PEM_BYTES} bytes")
    if isinstance(pem, str):
        return pem
    try:
        return pem.decode("ascii")
    except UnicodeDecodeError:
        raise CertificateError(
            slot, "the body is not PEM text (binary data; DER must be converted to PEM)"
        ) from None


def _certificate(slot: str, number: int, block: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(block.encode())
    except ValueError:
        raise CertificateError(slot, f"PEM block {number} is not a readable certificate") from None


def _key(slot: str, block: str) -> Any:
    if block.startswith("-----BEGIN ENCRYPTED") or "Proc-Type: 4,ENCRYPTED" in block:
        raise CertificateError(
            slot, f"the private key is encrypted; remove the passphrase ({_DECRYPT_HINT})"
        )
    try:
        key = serialization.load_pem_private_key(block.encode(), password=None)
    except TypeError:
        raise CertificateError(
            slot, f"the private key is encrypted; remove the passphrase ({_DECRYPT_HINT})"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateError(slot, "the private key cannot be read") from None
    if not isinstance(key, _SUPPORTED_KEYS):
        raise CertificateError(slot, "the private key must be RSA, EC or Ed25519")
    return key


def _leaf_first(
    slot: str, certificates: Sequence[x509.Certificate], key: Any
) -> list[x509.Certificate]:
    """Put the certificate that belongs to `key` first; refuse when none does."""
    wanted = _public(key.public_key())
    for index, certificate in enumerate(certificates):
        if _public(certificate.public_key()) == wanted:
            rest = [c for i, c in enumerate(certificates) if i != index]
            return [certificate, *rest]
    subject = certificates[0].subject.rfc4514_string() or "(no subject)"
    raise CertificateError(
        slot,
        f"the private key does not match the certificate {subject}; upload the key made with it",
    )


def _public(public_key: Any) -> bytes:
    return bytes(
        public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def self_signed(common_name: str, server_names: Sequence[x509.GeneralName] = ()) -> tuple[str, str]:
    """An EC P-256 certificate for `common_name` and its key, valid for about ten years: a TLS
    client certificate, or with `server_names` a server certificate for those names."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    now = datetime.datetime.now(datetime.UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server_names else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
    )
    if server_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(server_names), critical=False)
    certificate = (
        builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode(), _pkcs8(key)


def _pkcs8(key: Any) -> str:
    """An unencrypted private key as PKCS#8 PEM, the one form stored."""
    return str(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    )
