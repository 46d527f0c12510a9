"""DKIM (RFC 6376, RFC 8463 for Ed25519): the key pair of `smtp.dkim`, the DNS TXT record to
publish for it, the check of what DNS publishes, and the signature itself (dkimpy). It signs
bytes it is handed; it does not know where they go or how they were built."""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from doormail.settings import Dkim

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

# cryptography, dkimpy and dnspython are imported where they are used: a service that does not
# sign does not load them (README: what the long-running process keeps in memory).

Algorithm = Literal["rsa", "ed25519"]
ALGORITHMS: tuple[Algorithm, ...] = ("rsa", "ed25519")
# RFC 8301 asks for at least 1024 bits and recommends 2048; larger keys no longer fit one DNS
# TXT string pair at many providers.
RSA_BITS = 2048
# What the signature covers (RFC 6376 5.4.1): the headers a reader sees and the MIME headers
# that say how the body is read. A header the message lacks is left out, so that adding it
# later (a forwarder's Reply-To, say) does not break the signature.
SIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
)
# A function that answers a DNS name with its TXT record (strings joined), None when absent.
TxtLookup = Callable[[str], str | None]
NOT_PUBLISHED = "not published yet"


class DkimError(ValueError):
    """A message cannot be signed: the stored key is not a PEM RSA or Ed25519 private key, or
    the message is not one DKIM can sign (no From header, say)."""


class DkimLookupError(OSError):
    """DNS did not answer (as opposed to answering that there is no record)."""


@dataclass(frozen=True)
class DnsRecord:
    """What to publish in DNS for the key of `smtp.dkim` (SPEC section 9)."""

    domain: str
    selector: str
    dns_name: str
    dns_txt: str


@dataclass(frozen=True)
class Check:
    """What DNS publishes for the selector compared with the key in force."""

    matches: bool
    message: str
    dns_name: str
    expected: str
    published: str | None


def generate(algorithm: Algorithm) -> str:
    """A new private key as PEM (PKCS#8), to be stored as `smtp.dkim.private_key`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem.decode("ascii")


def _load(private_key: str) -> rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    try:
        key = serialization.load_pem_private_key(private_key.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError) as error:
        raise DkimError(f"not a PEM private key without a passphrase: {error}") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 1024:
            raise DkimError("an RSA key for DKIM needs at least 1024 bits (RFC 8301)")
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    raise DkimError("DKIM signs with an RSA or an Ed25519 key")


def validate(private_key: str) -> None:
    """Raise DkimError unless `private_key` can sign."""
    _load(private_key)


def public_value(private_key: str) -> tuple[str, str]:
    """The record's k= and p= values: for RSA the DER SubjectPublicKeyInfo, for Ed25519 the raw
    32-byte public key (RFC 8463 section 4.2), base64 both."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = _load(private_key)
    if isinstance(key, rsa.RSAPrivateKey):
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return "rsa", base64.b64encode(der).decode("ascii")
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519", base64.b64encode(raw).decode("ascii")


def dns_name(settings: Dkim) -> str:
    return f"{settings.selector}._domainkey.{settings.domain}"


def dns_record(settings: Dkim) -> DnsRecord:
    """The TXT record that publishes the public half of `settings.private_key`."""
    kind, value = public_value(settings.private_key)
    return DnsRecord(
        domain=settings.domain,
        selector=settings.selector,
        dns_name=dns_name(settings),
        dns_txt=f"v=DKIM1; k={kind}; p={value}",
    )


def sign(data: bytes, settings: Dkim) -> bytes:
    """`data` with a DKIM-Signature header in front: relaxed/relaxed, rsa-sha256 or
    ed25519-sha256 after the key's type."""
    import dkim

    algorithm, secret = _signing_key(settings.private_key)
    present = _header_names(data)
    headers = [name.encode("ascii") for name in SIGNED_HEADERS if name.lower() in present]
    try:
        signature = dkim.sign(
            data,
            settings.selector.encode("ascii"),
            settings.domain.encode("ascii"),
            secret,
            canonicalize=(b"relaxed", b"relaxed"),
            signature_algorithm=algorithm,
            include_headers=headers,
        )
    except dkim.DKIMException as error:
        raise DkimError(str(error)) from None
    return bytes(signature) + data


@functools.lru_cache(maxsize=4)
def _signing_key(private_key: str) -> tuple[bytes, bytes]:
    """The signature algorithm and the key in the form dkimpy reads. Kept for the next mail:
    loading a PEM RSA key (cryptography checks it) costs about a hundred times the signature."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = _load(private_key)
    if isinstance(key, rsa.RSAPrivateKey):
        # dkimpy reads the traditional PKCS#1 form.
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        return b"rsa-sha256", pem
    # dkimpy (through PyNaCl) takes the 32-byte seed, base64.
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return b"ed25519-sha256", base64.b64encode(seed)


def _header_names(data: bytes) -> set[str]:
    head = data.split(b"\r\n\r\n", 1)[0]
    return {
        line.split(b":", 1)[0].strip().lower().decode("ascii", "replace")
        for line in head.split(b"\r\n")
        if line and line[:1] not in (b" ", b"\t")
    }


def signature_tags(data: bytes) -> dict[str, str]:
    """The tags of the first DKIM-Signature header of `data` (a=, d=, s=, h=, ...)."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii", "replace")
    unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ")
    for line in unfolded.split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "dkim-signature":
            return _tags(value)
    return {}


def lookup_txt(name: str) -> str | None:
    """The TXT record at `name` from the system's resolver (dnspython), None when there is
    none; several strings of one record are joined, as RFC 6376 3.6.2.2 says."""
    import dns.exception
    import dns.resolver

    try:
        answer = dns.resolver.resolve(name, "TXT", lifetime=5.0)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
        return None
    except dns.exception.DNSException as error:
        raise DkimLookupError(f"could not look up {name}: {error}") from None
    for record in answer:
        return b"".join(record.strings).decode("ascii", "replace")
    return None


def check(settings: Dkim, lookup: TxtLookup) -> Check:
    """Whether DNS publishes the public key of `settings.private_key` at its selector."""
    record = dns_record(settings)
    try:
        published = lookup(record.dns_name)
    except DkimLookupError as error:
        return Check(False, str(error), record.dns_name, record.dns_txt, None)
    if published is None:
        return Check(False, NOT_PUBLISHED, record.dns_name, record.dns_txt, None)
    tags = _tags(published)
    kind, value = public_value(settings.private_key)
    if tags.get("p", "") == value and tags.get("k", "rsa") == kind:
        matching = "published and matches the key"
        return Check(True, matching, record.dns_name, record.dns_txt, published)
    if not tags.get("p"):
        message = "published without a key (p= is empty: the key was revoked)"
    else:
        message = "published, but with another key: publish the record shown"
    return Check(False, message, record.dns_name, record.dns_txt, published)


def _tags(record: str) -> dict[str, str]:
    tags = (tag.strip().partition("=") for tag in record.split(";"))
    return {k.strip(): "".join(v.split()) for k, _, v in tags if k.strip()}
