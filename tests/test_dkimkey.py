"""DKIM: a key pair of either algorithm, the TXT record that publishes it, a signature that
dkimpy's verifier accepts with that record, refuses once the body changes, and the check of
what DNS publishes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import dkim
from doormail import dkimkey
from doormail.settings import Dkim, Settings, SettingsError, apply_patch

MESSAGE = (
    b"From: Front door <door@example.org>\r\nTo: alice@example.com\r\nSubject: Missed call\r\n"
    b"Date: Sun, 29 Nov 2026 20:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 7bit\r\nAuto-Submitted: auto-generated\r\n\r\n"
    b"Front door called 101.\r\n"
)


def dkim_settings(algorithm: dkimkey.Algorithm) -> Dkim:
    return Dkim(
        enabled=True,
        domain="example.org",
        selector="door2026",
        private_key=dkimkey.generate(algorithm),
    )


def published(record: dkimkey.DnsRecord) -> Callable[..., bytes | None]:
    """A DNS that answers the record's name with its TXT value, and nothing else."""

    def txt(name: bytes, timeout: float = 5) -> bytes | None:
        return record.dns_txt.encode() if name.rstrip(b".") == record.dns_name.encode() else None

    return txt


@pytest.mark.parametrize(
    ("algorithm", "signature"), [("rsa", "rsa-sha256"), ("ed25519", "ed25519-sha256")]
)
def test_a_signed_message_verifies_with_the_published_key(
    algorithm: dkimkey.Algorithm, signature: str
) -> None:
    settings = dkim_settings(algorithm)
    record = dkimkey.dns_record(settings)
    signed = dkimkey.sign(MESSAGE, settings)
    assert dkim.verify(signed, dnsfunc=published(record))
    tags = dkimkey.signature_tags(signed)
    assert tags["a"] == signature and tags["c"] == "relaxed/relaxed"
    assert (tags["d"], tags["s"]) == ("example.org", "door2026")
    assert tags["h"].split(":") == [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
    ]
    assert signed.endswith(MESSAGE)


@pytest.mark.parametrize("algorithm", dkimkey.ALGORITHMS)
def test_a_changed_body_or_subject_fails_verification(algorithm: dkimkey.Algorithm) -> None:
    settings = dkim_settings(algorithm)
    signed = dkimkey.sign(MESSAGE, settings)
    dns = published(dkimkey.dns_record(settings))
    assert not dkim.verify(signed.replace(b"called 101", b"called 102"), dnsfunc=dns)
    assert not dkim.verify(signed.replace(b"Missed call", b"Answered call"), dnsfunc=dns)


def test_an_rsa_key_is_2048_bits_and_its_record_names_the_selector() -> None:
    settings = dkim_settings("rsa")
    record = dkimkey.dns_record(settings)
    assert record.dns_name == "door2026._domainkey.example.org"
    assert record.dns_txt.startswith("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A")
    ed = dkimkey.dns_record(dkim_settings("ed25519"))
    assert ed.dns_txt.startswith("v=DKIM1; k=ed25519; p=") and len(ed.dns_txt) == 66


def test_check_says_not_published_yet_matches_or_another_key() -> None:
    settings = dkim_settings("ed25519")
    record = dkimkey.dns_record(settings)
    absent = dkimkey.check(settings, lambda name: None)
    assert (absent.matches, absent.message) == (False, "not published yet")
    split = record.dns_txt.replace("; p=", ";  p=")  # spacing differs, the key is the same
    found = dkimkey.check(settings, lambda name: split if name == record.dns_name else None)
    assert found.matches and found.published == split
    other = dkimkey.dns_record(dkim_settings("ed25519")).dns_txt
    stale = dkimkey.check(settings, lambda name: other)
    assert not stale.matches and "another key" in stale.message
    revoked = dkimkey.check(settings, lambda name: "v=DKIM1; p=")
    assert not revoked.matches and "revoked" in revoked.message


def test_a_key_that_cannot_sign_is_refused_at_its_field() -> None:
    with pytest.raises(SettingsError) as refused:
        apply_patch(Settings(), {"smtp": {"dkim": {"private_key": "not a key"}}})
    assert refused.value.field == "smtp.dkim.private_key"
    with pytest.raises(SettingsError) as bad_name:
        apply_patch(Settings(), {"smtp": {"dkim": {"selector": "door 1"}}})
    assert bad_name.value.field == "smtp.dkim.selector"
