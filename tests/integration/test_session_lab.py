"""The SMTP session against the real Postfix lab over real sockets: plain, STARTTLS + AUTH and
implicit TLS + AUTH deliver into the maildir, the client certificate reaches the server, and
every setting that cannot work fails with the hint that says what to fix."""

from __future__ import annotations

import re
import ssl
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from doormail.app import Service
from doormail.delivery.errors import AUTH_HINT, CA_HINT
from doormail.delivery.session import (
    DeliveryError,
    PermanentDeliveryError,
    SmtpReply,
    SmtpSession,
)
from doormail.settings import Smtp
from tests.conftest import Lab

pytestmark = pytest.mark.integration


def lab_context(lab: Lab, *, client_certificate: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(lab.ca))
    if client_certificate:
        context.load_cert_chain(str(lab.client_cert), str(lab.client_key))
    return context


def recipient() -> str:
    return f"session-{uuid.uuid4().hex}@example.com"


def message_to(to: str) -> bytes:
    return (
        f"From: cam@example.org\r\nTo: {to}\r\nSubject: session test\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@example.org>\r\n\r\nhello\r\n"
    ).encode()


def session_of_queue_id(lab: Lab, offset: int, queue_id: str) -> str:
    """The lab log lines of the smtpd session that queued `queue_id`."""
    text = ""
    deadline = time.monotonic() + 5
    process = None
    while process is None and time.monotonic() < deadline:
        with lab.log.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        process = re.search(rf"(\S+smtpd\[\d+\]): {queue_id}: client=", text)
        time.sleep(0.05)
    assert process is not None, f"{queue_id} not in the lab log"
    # One smtpd process serves connections one after another: keep only the one that queued it.
    lines = [line for line in text.splitlines() if process.group(1) + ":" in line]
    at = next(i for i, line in enumerate(lines) if f"{queue_id}: client=" in line)
    start = max((i for i, line in enumerate(lines[:at]) if " connect from " in line), default=0)
    end = next(
        (i for i, line in enumerate(lines) if i > at and " disconnect from " in line), len(lines)
    )
    return "\n".join(lines[start : end + 1])


async def send_one(
    smtp: Smtp, context: ssl.SSLContext, to: str, stages: list[tuple[str, str]] | None = None
) -> SmtpReply:
    on_stage = (lambda s, m: stages.append((s, m))) if stages is not None else None
    async with SmtpSession(smtp, context, on_stage=on_stage, timeout=10) as session:
        return await session.send("cam@example.org", to, message_to(to))


async def failure(smtp: Smtp, context: ssl.SSLContext) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        await send_one(smtp, context, recipient())
    return caught.value


def lab_smtp(lab: Lab, port: int, **changes: Any) -> Smtp:
    return Smtp(server=lab.host, port=port, **changes)


async def test_plain_smtp_delivers_into_the_maildir(lab: Lab) -> None:
    to = recipient()
    reply = await send_one(lab_smtp(lab, lab.plain), lab_context(lab), to)
    assert reply.code == 250 and "queued as" in reply.message
    assert lab.mail_to(to)["Subject"] == "session test"


async def test_starttls_with_auth_and_client_certificate(lab: Lab) -> None:
    to = recipient()
    offset = lab.log.stat().st_size
    stages: list[tuple[str, str]] = []
    smtp = lab_smtp(lab, lab.starttls, username=lab.user, password=lab.password)
    reply = await send_one(smtp, lab_context(lab, client_certificate=True), to, stages)
    received = str(lab.mail_to(to)["Received"])
    assert "Authenticated sender: lab@smtp-lab" in received
    assert 'Client CN "lab-client"' in received
    queue_id = reply.message.rsplit(" ", 1)[-1]
    log = session_of_queue_id(lab, offset, queue_id)
    assert "subject_CN=lab-client" in log
    assert "Trusted TLS connection established" in log
    tls = [message for stage, message in stages if stage == "tls"]
    assert tls and "TLSv1." in tls[0]
    assert "subject CN=localhost, issuer CN=smtp-lab test CA" in tls[0]
    assert ("auth", "PLAIN as lab → 235 2.7.0 Authentication successful") in stages


async def test_implicit_tls_with_auth(lab: Lab) -> None:
    to = recipient()
    smtp = lab_smtp(lab, lab.tls, security="tls", username=lab.user, password=lab.password)
    stages: list[tuple[str, str]] = []
    await send_one(smtp, lab_context(lab), to, stages)
    assert "Authenticated sender: lab@smtp-lab" in str(lab.mail_to(to)["Received"])
    assert [stage for stage, _ in stages][:4] == ["resolving", "connecting", "connecting", "tls"]


async def test_several_mails_over_one_starttls_connection(lab: Lab) -> None:
    offset = lab.log.stat().st_size
    smtp = lab_smtp(lab, lab.starttls, username=lab.user, password=lab.password)
    addresses = [recipient() for _ in range(3)]
    async with SmtpSession(smtp, lab_context(lab), timeout=10) as session:
        replies = [await session.send("cam@example.org", to, message_to(to)) for to in addresses]
    for to in addresses:
        lab.mail_to(to)
    queue_ids = [reply.message.rsplit(" ", 1)[-1] for reply in replies]
    log = session_of_queue_id(lab, offset, queue_ids[0])
    assert log.count(" connect from ") == 1
    for queue_id in queue_ids[1:]:
        assert f"{queue_id}: client=" in log


async def test_wrong_password_fails_with_the_535_hint(lab: Lab) -> None:
    smtp = lab_smtp(lab, lab.starttls, username=lab.user, password="not-the-password")
    error = await failure(smtp, lab_context(lab))
    assert isinstance(error, PermanentDeliveryError)
    assert error.code == 535
    assert error.reply.startswith("535 5.7.8")
    assert error.hint == AUTH_HINT


async def test_untrusted_certificate_fails_with_the_ca_hint(lab: Lab) -> None:
    smtp = lab_smtp(lab, lab.starttls, username=lab.user, password=lab.password)
    error = await failure(smtp, ssl.create_default_context())  # the system store
    assert isinstance(error, PermanentDeliveryError)
    assert error.stage == "tls"
    assert CA_HINT in error.hint
    assert "issuer CN=smtp-lab test CA" in error.hint


async def test_security_tls_on_the_plain_port_gives_the_wrong_port_hint(lab: Lab) -> None:
    error = await failure(lab_smtp(lab, lab.plain, security="tls"), lab_context(lab))
    assert isinstance(error, PermanentDeliveryError)
    assert error.hint == f"port {lab.plain} speaks plain SMTP: set smtp.security to starttls"


async def test_auth_is_refused_in_the_clear(lab: Lab) -> None:
    smtp = lab_smtp(lab, lab.plain, username=lab.user, password=lab.password)
    error = await failure(smtp, lab_context(lab))
    assert isinstance(error, PermanentDeliveryError)
    assert error.stage == "auth"
    assert "unencrypted" in str(error)


async def test_unauthenticated_submission_is_refused_as_relaying(lab: Lab) -> None:
    error = await failure(lab_smtp(lab, lab.starttls), lab_context(lab))
    assert error.code == 554 and error.stage == "rcpt"
    assert "relay" in error.hint


async def test_ca_set_and_user_certificate_from_the_certificate_slots(
    lab: Lab, service: Service, tmp_path: Path
) -> None:
    service.certificates.put("ca1", lab.ca.read_text())
    service.certificates.put("user1", lab.client_cert.read_text() + lab.client_key.read_text())
    smtp = lab_smtp(
        lab,
        lab.tls,
        security="tls",
        ca="ca1",
        certificate="user1",
        username=lab.user,
        password=lab.password,
    )
    to = recipient()
    await send_one(smtp, service.certificates.tls_context(smtp), to)
    assert 'Client CN "lab-client"' in str(lab.mail_to(to)["Received"])


@pytest.mark.parametrize("security", ["starttls", "auto", "none"])
async def test_a_plain_session_to_the_implicit_tls_port_is_named_within_5_seconds(
    lab: Lab, security: str
) -> None:
    started = time.monotonic()
    smtp = lab_smtp(lab, lab.tls, security=security)
    with pytest.raises(DeliveryError) as caught:
        async with SmtpSession(smtp, lab_context(lab), timeout=20):
            pass
    assert time.monotonic() - started < 5
    assert isinstance(caught.value, PermanentDeliveryError)
    assert caught.value.hint == f"port {lab.tls} speaks implicit TLS: set smtp.security to tls"
