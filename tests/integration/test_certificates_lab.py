"""Certificates against the Postfix lab over real sockets: its CA in a CA set verifies the
server, its client certificate in a user set is shown to the server, and the self-signed one
is presented when nothing else is chosen."""

from __future__ import annotations

import re
import smtplib
import ssl
import time
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from doormail.app import Service
from doormail.settings import Smtp
from tests.conftest import Lab

PEM = {"Content-Type": "application/x-pem-file"}


def starttls(lab: Lab, context: ssl.SSLContext) -> str:
    """A STARTTLS session; returns the unique recipient it tried, which Postfix logs when it
    refuses the unauthenticated RCPT, so the session's own log lines can be found."""
    marker = f"tls-{uuid.uuid4().hex}@example.com"
    with smtplib.SMTP(lab.host, lab.starttls, timeout=10) as client:
        client.starttls(context=context)
        client.ehlo()
        client.mail("doorbell@example.org")
        client.rcpt(marker)
    return marker


def session_log(lab: Lab, offset: int, marker: str) -> str:
    """The lab's log lines of the one smtpd session that logged `marker` (other tests talk to
    the lab at the same time, so lines are matched by process and session start)."""
    deadline = time.monotonic() + 5
    while True:
        with lab.log.open("rb") as log:
            log.seek(offset)
            lines = log.read().decode(errors="replace").splitlines()
        found = [index for index, line in enumerate(lines) if marker in line]
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if not found:
        return ""
    process = re.search(r"\S+\[\d+\]:", lines[found[0]])
    assert process is not None
    session: list[str] = []
    for line in reversed(lines[: found[0] + 1]):
        if process.group(0) in line:
            session.append(line)
            if "connect from" in line and "disconnect" not in line:
                break
    return "\n".join(reversed(session))


def upload(api: TestClient, slot: str, *paths: Path) -> dict[str, object]:
    body = "".join(path.read_text() for path in paths)
    response = api.put(f"/api/certificates/{slot}", content=body, headers=PEM)
    assert response.status_code == 200, response.text
    shown: dict[str, object] = response.json()
    return shown


def test_lab_client_certificate_and_key_are_accepted_as_user_certificate(
    api: TestClient, lab: Lab
) -> None:
    shown = upload(api, "user1", lab.client_cert, lab.client_key)
    assert shown["subject"] == "CN=lab-client"
    assert shown["has_key"] is True
    assert "PRIVATE KEY" not in api.get("/api/certificates").text


def test_key_of_another_certificate_is_refused_naming_the_slot(api: TestClient, lab: Lab) -> None:
    other_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    body = lab.client_cert.read_text() + other_key.decode()
    response = api.put("/api/certificates/user2", content=body, headers=PEM)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "user2"
    assert "does not match" in response.json()["error"]["message"]


def test_lab_ca_in_a_ca_set_verifies_the_starttls_server(
    api: TestClient, lab: Lab, service: Service
) -> None:
    upload(api, "ca1", lab.ca)
    starttls(lab, service.certificates.tls_context(Smtp(ca="ca1")))


def test_system_store_does_not_trust_the_lab_server(service: Service, lab: Lab) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        starttls(lab, service.certificates.tls_context(Smtp(ca="system")))


def test_no_verification_connects_to_an_untrusted_server(service: Service, lab: Lab) -> None:
    starttls(lab, service.certificates.tls_context(Smtp(verify_certificate=False)))


def test_chosen_user_certificate_is_shown_to_the_server(
    api: TestClient, lab: Lab, service: Service
) -> None:
    upload(api, "ca1", lab.ca)
    upload(api, "user1", lab.client_cert, lab.client_key)
    offset = lab.log.stat().st_size
    marker = starttls(lab, service.certificates.tls_context(Smtp(ca="ca1", certificate="user1")))
    text = session_log(lab, offset, marker)
    assert "subject_CN=lab-client" in text
    assert "Trusted TLS connection established" in text


def test_self_signed_certificate_is_shown_when_no_user_certificate_is_chosen(
    api: TestClient, lab: Lab, service: Service
) -> None:
    upload(api, "ca1", lab.ca)
    fingerprint = service.certificates.get("self-signed").fingerprint
    assert fingerprint is not None
    offset = lab.log.stat().st_size
    marker = starttls(lab, service.certificates.tls_context(Smtp(ca="ca1")))
    text = session_log(lab, offset, marker)
    assert f"fingerprint={fingerprint}" in text
    assert "subject_CN=doormail" in text
