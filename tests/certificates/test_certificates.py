"""The Certificates subsection: the self-signed certificate made at first power-up and kept,
user certificate + private key sets, CA certificate sets, and the TLS contexts built from them."""

from __future__ import annotations

import datetime
import re
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from doormail.app import Paths, Service, build_service
from doormail.certificates import CertificateError, pem
from doormail.settings import Smtp
from doormail.web.app import create_app
from tests.conftest import ADMIN_PASSWORD

PEM = {"Content-Type": "application/x-pem-file"}

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def make_key(kind: str = "ec") -> PrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def make_certificate(
    key: PrivateKey, name: str, issuer_key: PrivateKey | None = None, issuer: str | None = None
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    signer = issuer_key or key
    algorithm = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer or name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=issuer_key is None, path_length=None), True)
        .sign(signer, algorithm)
    )


def cert_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key: PrivateKey, traditional: bool = False) -> str:
    form = serialization.PrivateFormat.PKCS8
    if traditional:
        form = serialization.PrivateFormat.TraditionalOpenSSL
    return key.private_bytes(
        serialization.Encoding.PEM, form, serialization.NoEncryption()
    ).decode()


def user_set(kind: str = "ec", name: str = "door-client") -> tuple[x509.Certificate, str]:
    key = make_key(kind)
    certificate = make_certificate(key, name)
    return certificate, cert_pem(certificate) + key_pem(key)


def slot_of(api: TestClient, slot: str) -> dict[str, object]:
    listed = api.get("/api/certificates").json()["certificates"]
    return next(item for item in listed if item["slot"] == slot)


def fingerprint_of(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


# -- the self-signed certificate ---------------------------------------------------------------


def test_self_signed_certificate_is_generated_upon_first_start_and_kept(data_dir: Path) -> None:
    first = build_service(Paths.resolve(str(data_dir))).certificates.get("self-signed")
    second = build_service(Paths.resolve(str(data_dir))).certificates.get("self-signed")
    assert not first.empty and first.has_key
    assert first.fingerprint == second.fingerprint
    assert first.subject == "CN=doormail"
    assert first.not_after is not None and first.not_before is not None
    lifetime = datetime.datetime.fromisoformat(first.not_after) - datetime.datetime.fromisoformat(
        first.not_before
    )
    assert lifetime.days >= 3649


def test_self_signed_certificate_cannot_be_replaced_or_deleted(api: TestClient) -> None:
    _, pem = user_set()
    for response in (
        api.put("/api/certificates/self-signed", content=pem, headers=PEM),
        api.delete("/api/certificates/self-signed"),
    ):
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "self-signed"
    assert slot_of(api, "self-signed")["has_key"] is True


# -- user certificate sets ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "traditional"),
    [("ec", False), ("ec", True), ("rsa", False), ("rsa", True), ("ed25519", False)],
)
def test_user_certificate_with_its_private_key_is_accepted(
    api: TestClient, kind: str, traditional: bool
) -> None:
    key = make_key(kind)
    certificate = make_certificate(key, f"client-{kind}")
    body = cert_pem(certificate) + key_pem(key, traditional)
    response = api.put("/api/certificates/user2", content=body, headers=PEM)
    assert response.status_code == 200, response.text
    shown = response.json()
    assert shown["subject"] == f"CN=client-{kind}"
    assert shown["fingerprint"] == fingerprint_of(certificate)
    assert shown["has_key"] is True
    assert slot_of(api, "user2")["fingerprint"] == fingerprint_of(certificate)


def test_certificate_chain_is_stored_leaf_first(api: TestClient) -> None:
    ca_key = make_key()
    ca = make_certificate(ca_key, "Door CA")
    key = make_key()
    leaf = make_certificate(key, "door-leaf", issuer_key=ca_key, issuer="Door CA")
    # Intermediate first, key in the middle: the order people paste things in varies.
    body = cert_pem(ca) + key_pem(key) + cert_pem(leaf)
    response = api.put(
        "/api/certificates/user1", content=body, headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["subject"] == "CN=door-leaf"
    assert response.json()["issuer"] == "CN=Door CA"
    assert response.json()["certificates"] == 2


def test_key_that_does_not_match_its_certificate_is_refused(api: TestClient) -> None:
    certificate, _ = user_set()
    body = cert_pem(certificate) + key_pem(make_key())
    response = api.put("/api/certificates/user3", content=body, headers=PEM)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation"
    assert error["field"] == "user3"
    assert "does not match" in error["message"]
    assert slot_of(api, "user3")["empty"] is True


def test_user_certificate_without_private_key_is_refused(api: TestClient) -> None:
    certificate, _ = user_set()
    response = api.put("/api/certificates/user1", content=cert_pem(certificate), headers=PEM)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "user1"
    assert "private key" in response.json()["error"]["message"]


def test_encrypted_private_key_is_refused_with_a_hint(api: TestClient) -> None:
    key = make_key()
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    ).decode()
    body = cert_pem(make_certificate(key, "locked")) + encrypted
    response = api.put("/api/certificates/user1", content=body, headers=PEM)
    assert response.status_code == 422
    assert "encrypted" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"hello, this is not a certificate", "not PEM"),
        (b"\x30\x82\x01\x0a\xff\xfe binary DER", "not PEM"),
        (b"-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n", "not a readable"),
        (b"-----BEGIN PUBLIC KEY-----\nbm9wZQ==\n-----END PUBLIC KEY-----\n", "PUBLIC KEY"),
        (b"", "empty"),
    ],
)
def test_garbage_is_refused_naming_the_slot(api: TestClient, body: bytes, words: str) -> None:
    response = api.put("/api/certificates/user1", content=body, headers=PEM)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "user1"
    assert words in error["message"]


def test_deleting_a_user_certificate_empties_the_slot(api: TestClient) -> None:
    _, pem = user_set()
    assert api.put("/api/certificates/user1", content=pem, headers=PEM).status_code == 200
    response = api.delete("/api/certificates/user1")
    assert response.status_code == 200
    assert response.json()["empty"] is True
    assert slot_of(api, "user1") == response.json()


# -- CA certificate sets ------------------------------------------------------------------------


def test_ca_certificate_set_accepts_several_certificates(api: TestClient) -> None:
    first = make_certificate(make_key(), "Root One")
    second = make_certificate(make_key("rsa"), "Root Two")
    body = cert_pem(first) + cert_pem(second)
    response = api.put("/api/certificates/ca2", content=body, headers=PEM)
    assert response.status_code == 200, response.text
    assert response.json()["certificates"] == 2
    assert response.json()["has_key"] is False


def test_ca_set_without_certificate_or_with_a_key_is_refused(api: TestClient) -> None:
    key = make_key()
    alone = api.put("/api/certificates/ca1", content=key_pem(key), headers=PEM)
    assert alone.status_code == 422
    assert alone.json()["error"]["field"] == "ca1"
    with_key = cert_pem(make_certificate(key, "Root")) + key_pem(key)
    response = api.put("/api/certificates/ca1", content=with_key, headers=PEM)
    assert response.status_code == 422
    assert "certificates only" in response.json()["error"]["message"]


# -- size and reading of the PEM text ----------------------------------------------------------


PEM_LIMIT = 64 * 1024


def padded_to(pem: str, size: int) -> str:
    """`pem` after lines of explanatory text (as openssl writes before a block) making `size`
    bytes in all."""
    line = "# " + "x" * 61 + "\n"
    padding = line * ((size - len(pem)) // len(line))
    return padding + "#" * (size - len(pem) - len(padding) - 1) + "\n" + pem


def test_pem_text_larger_than_64_kb_is_refused_naming_the_slot(api: TestClient) -> None:
    root = cert_pem(make_certificate(make_key(), "Root"))
    accepted = api.put("/api/certificates/ca1", content=padded_to(root, PEM_LIMIT), headers=PEM)
    assert accepted.status_code == 200, accepted.text
    refused = api.put(
        "/api/certificates/ca2", content=padded_to(root, PEM_LIMIT + 1), headers=PEM
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "ca2"
    assert f"larger than {PEM_LIMIT} bytes" in refused.json()["error"]["message"]
    assert slot_of(api, "ca2")["empty"] is True


def test_pem_text_larger_than_64_kb_is_refused_by_the_certificates_tab(service: Service) -> None:
    root = cert_pem(make_certificate(make_key(), "Root"))
    with TestClient(create_app(service)) as browser:
        token = logged_in(browser)
        form = {"csrf_token": token, "pem": padded_to(root, PEM_LIMIT + 1)}
        refused = browser.post("/certificates/ca3", data=form, follow_redirects=False)
        assert refused.status_code == 422
        assert f"larger than {PEM_LIMIT} bytes" in refused.text
        form["pem"] = padded_to(root, PEM_LIMIT)
        stored = browser.post("/certificates/ca3", data=form, follow_redirects=False)
        assert stored.status_code == 303
    assert not service.certificates.get("ca3").empty


def logged_in(browser: TestClient) -> str:
    """Log `browser` in to the web UI; the session's CSRF token."""
    login = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/login").text)
    assert login
    form = {"csrf_token": login.group(1), "username": "admin", "password": ADMIN_PASSWORD}
    browser.post("/login", data=form, follow_redirects=False)
    token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/certificates").text)
    assert token
    return token.group(1)


def test_many_begin_lines_without_an_end_are_not_pem(api: TestClient) -> None:
    body = "-----BEGIN A-----\n" * (PEM_LIMIT // 18)
    response = api.put("/api/certificates/ca1", content=body, headers=PEM)
    assert response.status_code == 422
    assert "not PEM" in response.json()["error"]["message"]


def test_a_block_is_read_past_an_unended_begin_line_and_explanatory_text(
    api: TestClient,
) -> None:
    root = cert_pem(make_certificate(make_key(), "Root"))
    body = "-----BEGIN A-----\nsubject=CN = Root\r\n" + root.replace("\n", "\r\n")
    response = api.put("/api/certificates/ca1", content=body, headers=PEM)
    assert response.status_code == 200, response.text
    assert response.json()["subject"] == "CN=Root"


# The PEM block as a regular expression: it finds the same blocks as the line-by-line reader
# in text made of whole lines, but in quadratic time on many BEGIN lines without an END, so it
# serves here as the definition that the reader is checked against, on short texts.
PEM_DEFINITION = re.compile(
    r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL | re.ASCII
)
PEM_LINES = st.sampled_from(
    [
        "-----BEGIN A-----",
        "-----END A-----",
        "-----BEGIN CERTIFICATE-----",
        "-----END CERTIFICATE-----\r",
        "-----END B-----",
        "MIIBszCCAVmgAwIBAgIU",
        "",
    ]
)


@settings(max_examples=1000, deadline=None)
@given(lines=st.lists(PEM_LINES, max_size=20), newline_at_end=st.booleans())
def test_pem_blocks_are_read_as_the_format_defines(
    lines: list[str], newline_at_end: bool
) -> None:
    text = "\n".join(lines) + ("\n" if newline_at_end else "")
    expected = [(m.group(1), m.group(0)) for m in PEM_DEFINITION.finditer(text)]
    assert pem._blocks(text) == expected


# -- listing and access -------------------------------------------------------------------------


def test_listing_shows_every_slot_and_never_a_key(api: TestClient) -> None:
    _, pem = user_set()
    api.put("/api/certificates/user1", content=pem, headers=PEM)
    response = api.get("/api/certificates")
    assert response.status_code == 200
    assert "PRIVATE KEY" not in response.text
    listed = response.json()["certificates"]
    assert [item["slot"] for item in listed] == [
        "self-signed", "user1", "user2", "user3", "ca1", "ca2", "ca3",
    ]  # fmt: skip
    assert [item["empty"] for item in listed] == [False, False, True, True, True, True, True]
    fingerprint = listed[1]["fingerprint"]
    assert len(fingerprint.split(":")) == 32 and fingerprint == fingerprint.upper()


def test_unknown_slot_is_not_found(api: TestClient) -> None:
    _, pem = user_set()
    assert api.put("/api/certificates/user4", content=pem, headers=PEM).status_code == 404
    assert api.delete("/api/certificates/ca0").status_code == 404


def test_certificates_need_authentication(anonymous: TestClient) -> None:
    assert anonymous.get("/api/certificates").status_code == 401
    assert anonymous.put("/api/certificates/user1", content="x").status_code == 401


# -- TLS contexts -------------------------------------------------------------------------------


def test_tls_context_without_verification_checks_neither_certificate_nor_host(
    service: Service,
) -> None:
    context = service.certificates.tls_context(Smtp(verify_certificate=False, ca="ca1"))
    assert context.verify_mode == ssl.CERT_NONE
    assert context.check_hostname is False
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_tls_context_with_system_store_verifies_host_names(service: Service) -> None:
    context = service.certificates.tls_context(Smtp())
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_empty_ca_slot_chosen_for_verification_is_an_error(service: Service) -> None:
    with pytest.raises(CertificateError) as raised:
        service.certificates.tls_context(Smtp(ca="ca3"))
    assert raised.value.field == "smtp.ca"


def test_empty_user_certificate_chosen_is_an_error(service: Service) -> None:
    with pytest.raises(CertificateError) as raised:
        service.certificates.tls_context(Smtp(certificate="user2"))
    assert raised.value.field == "smtp.certificate"


def test_tls_context_is_reused_until_a_slot_changes(service: Service) -> None:
    certificates = service.certificates
    root = make_certificate(make_key(), "Root")
    certificates.put("ca1", cert_pem(root))
    smtp = Smtp(ca="ca1")
    first = certificates.tls_context(smtp)
    assert certificates.tls_context(smtp) is first
    assert [c["subject"] for c in first.get_ca_certs()] == [((("commonName", "Root"),),)]
    certificates.put("ca1", cert_pem(make_certificate(make_key(), "Other Root")))
    assert certificates.tls_context(smtp) is not first


def test_client_key_file_is_private_and_kept_under_the_data_folder(service: Service) -> None:
    _, pem = user_set()
    service.certificates.put("user1", pem)
    service.certificates.tls_context(Smtp(certificate="user1"))
    folder = service.paths.data_dir / "tls"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    written = folder / "user1.pem"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert "PRIVATE KEY" in written.read_text()
