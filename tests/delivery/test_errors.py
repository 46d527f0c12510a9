"""Classifying what an SMTP server or the network said: temporary (retry until Deliver In runs
out) or permanent (failed), the server's words kept, and a hint that says what to fix."""

from __future__ import annotations

import socket
import ssl

import aiosmtplib
import pytest

from doormail.delivery.errors import (
    AUTH_HINT,
    CA_HINT,
    DNS_HINT,
    NEEDS_AUTH_HINT,
    PORT_HINT,
    RELAY_HINT,
    Attempt,
    DeliveryError,
    PermanentDeliveryError,
    Scope,
    SmtpReply,
    Stage,
    TemporaryDeliveryError,
    from_exception,
    from_reply,
)

STARTTLS_587 = Attempt(
    server="mail.example.com", port=587, security="auto", implicit_tls=False, timeout=30
)
TLS_25 = Attempt(server="mail.example.com", port=25, security="tls", implicit_tls=True, timeout=30)


def _chained(outer: BaseException, cause: BaseException) -> BaseException:
    outer.__cause__ = cause
    return outer


def _verification_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message}")
    error.verify_code = code
    error.verify_message = message
    return error


@pytest.mark.parametrize(
    ("code", "stage"), [(421, "mail"), (451, "data"), (450, "rcpt"), (452, "rcpt"), (454, "auth")]
)
def test_4xx_replies_are_temporary_and_keep_the_servers_words(code: int, stage: str) -> None:
    error = from_reply(SmtpReply(code, "4.3.0 try again later"), stage=stage, attempt=STARTTLS_587)
    assert isinstance(error, TemporaryDeliveryError)
    assert isinstance(error, ConnectionError)
    assert error.temporary
    assert error.code == code
    assert error.reply == f"{code} 4.3.0 try again later"
    assert error.stage == stage
    assert "tries again" in error.hint


@pytest.mark.parametrize("code", [500, 550, 552, 553, 554])
def test_5xx_replies_are_permanent(code: int) -> None:
    error = from_reply(SmtpReply(code, "5.0.0 no"), stage="data", attempt=STARTTLS_587)
    assert isinstance(error, PermanentDeliveryError)
    assert not error.temporary
    assert error.code == code
    assert str(code) in str(error)


def test_535_says_check_username_and_password_or_app_password() -> None:
    refused = aiosmtplib.SMTPAuthenticationError(535, "5.7.8 Error: authentication failed")
    error = from_exception(refused, stage="auth", attempt=STARTTLS_587)
    assert isinstance(error, PermanentDeliveryError)
    assert error.hint == AUTH_HINT
    assert "app password" in error.hint
    assert error.reply == "535 5.7.8 Error: authentication failed"


def test_535_with_xoauth2_points_at_the_oauth2_settings() -> None:
    attempt = Attempt("smtp.office365.com", 587, "starttls", False, 30, xoauth2=True)
    error = from_reply(
        SmtpReply(535, "5.7.3 Authentication unsuccessful"), stage="auth", attempt=attempt
    )
    assert "smtp.oauth2" in error.hint


def test_530_asks_for_smtp_username() -> None:
    refused = aiosmtplib.SMTPSenderRefused(530, "5.7.0 Authentication required", "a@b.c")
    error = from_exception(refused, stage="mail", attempt=STARTTLS_587)
    assert error.hint == NEEDS_AUTH_HINT
    assert not error.temporary


def test_530_must_issue_starttls_first_asks_for_starttls() -> None:
    reply = SmtpReply(530, "5.7.0 Must issue a STARTTLS command first")
    error = from_reply(reply, stage="mail", attempt=STARTTLS_587)
    assert "STARTTLS" in error.hint and "smtp.security" in error.hint


@pytest.mark.parametrize(
    "reply",
    [
        SmtpReply(554, "5.7.1 <x@example.com>: Relay access denied"),
        SmtpReply(550, "5.7.1 Unable to relay"),
        SmtpReply(550, "relaying denied"),
    ],
)
def test_relay_denied_on_rcpt_says_authenticate_or_allow_the_from_address(
    reply: SmtpReply,
) -> None:
    error = from_reply(reply, stage="rcpt", attempt=STARTTLS_587)
    assert isinstance(error, PermanentDeliveryError)
    assert error.hint == RELAY_HINT


def test_unknown_recipient_says_check_the_address() -> None:
    error = from_reply(SmtpReply(550, "5.1.1 user unknown"), stage="rcpt", attempt=STARTTLS_587)
    assert "recipient" in error.hint


def test_refused_sender_points_at_smtp_from() -> None:
    error = from_reply(SmtpReply(553, "5.7.1 sender not owned"), stage="mail", attempt=STARTTLS_587)
    assert "smtp.from" in error.hint


def test_message_too_large_points_at_max_message_bytes() -> None:
    error = from_reply(
        SmtpReply(552, "5.3.4 Message size exceeds"), stage="data", attempt=STARTTLS_587
    )
    assert "smtp.max_message_bytes" in error.hint


def test_untrusted_certificate_is_permanent_and_names_the_certificate() -> None:
    cause = _verification_error(19, "self-signed certificate in certificate chain")
    failure = _chained(aiosmtplib.SMTPConnectError("Error connecting"), cause)
    error = from_exception(
        failure,
        stage="connecting",
        attempt=TLS_25,
        certificate="subject CN=localhost, issuer CN=smtp-lab test CA",
    )
    assert isinstance(error, PermanentDeliveryError)
    assert error.stage == "tls"
    assert CA_HINT in error.hint
    assert "subject CN=localhost, issuer CN=smtp-lab test CA" in error.hint


def test_host_name_mismatch_says_which_name_to_use() -> None:
    cause = _verification_error(62, "Hostname mismatch, certificate is not valid for 'x'.")
    error = from_exception(cause, stage="tls", attempt=STARTTLS_587)
    assert isinstance(error, PermanentDeliveryError)
    assert "not issued for mail.example.com" in error.hint
    assert "smtp.verify_certificate" in error.hint


def test_expired_certificate_says_so() -> None:
    error = from_exception(
        _verification_error(10, "certificate has expired"), stage="tls", attempt=STARTTLS_587
    )
    assert "expired" in error.hint and not error.temporary


def test_security_tls_on_a_plain_smtp_port_gives_the_wrong_port_hint() -> None:
    cause = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)")
    failure = _chained(aiosmtplib.SMTPConnectError("Error connecting"), cause)
    error = from_exception(failure, stage="connecting", attempt=TLS_25)
    assert isinstance(error, PermanentDeliveryError)
    assert error.hint == "port 25 speaks plain SMTP: set smtp.security to starttls"
    assert "port 25" in str(error)


def test_a_name_that_does_not_resolve_says_so() -> None:
    cause = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    failure = _chained(aiosmtplib.SMTPConnectError("Error connecting"), cause)
    error = from_exception(failure, stage="resolving", attempt=STARTTLS_587)
    assert isinstance(error, TemporaryDeliveryError)
    assert error.hint == DNS_HINT


def test_connection_refused_is_temporary() -> None:
    cause = ConnectionRefusedError(111, "Connect call failed")
    error = from_exception(
        _chained(aiosmtplib.SMTPConnectError("x"), cause), stage="connecting", attempt=TLS_25
    )
    assert isinstance(error, TemporaryDeliveryError)
    assert "smtp.port" in error.hint


def test_timeout_says_nothing_answered_within_the_timeout() -> None:
    failure = aiosmtplib.SMTPConnectTimeoutError("Timed out connecting to x on port 587")
    error = from_exception(failure, stage="connecting", attempt=STARTTLS_587)
    assert isinstance(error, TemporaryDeliveryError)
    assert error.hint.startswith(
        "nothing answered within 30 s: check server address, port and firewall"
    )


def test_no_greeting_on_a_starttls_setting_suggests_the_implicit_tls_port() -> None:
    failure = aiosmtplib.SMTPConnectTimeoutError("Timed out waiting for server ready message")
    error = from_exception(failure, stage="connecting", attempt=STARTTLS_587)
    assert PORT_HINT in error.hint


def test_connection_dropped_midway_is_temporary() -> None:
    error = from_exception(
        aiosmtplib.SMTPServerDisconnected("Connection lost"), stage="rcpt", attempt=STARTTLS_587
    )
    assert isinstance(error, TemporaryDeliveryError)
    assert error.stage == "rcpt"


def test_an_answer_that_is_not_smtp_is_permanent_with_the_port_hint() -> None:
    garbage = aiosmtplib.SMTPResponseException(-1, "Malformed SMTP response line: HTTP/1.1 400")
    error = from_exception(garbage, stage="connecting", attempt=STARTTLS_587)
    assert isinstance(error, PermanentDeliveryError)
    assert PORT_HINT in error.hint


def test_a_classified_error_passes_through_unchanged() -> None:
    original = PermanentDeliveryError("x", hint="y", stage="auth")
    assert from_exception(original, stage="mail", attempt=STARTTLS_587) is original


def test_smtp_reply_reads_like_the_server_said_it() -> None:
    assert str(SmtpReply(250, "2.0.0 Ok: queued as 4Xyz")) == "250 2.0.0 Ok: queued as 4Xyz"


def test_every_delivery_error_carries_a_hint_and_a_stage() -> None:
    error: DeliveryError = from_reply(SmtpReply(500, "?"), stage="ehlo", attempt=STARTTLS_587)
    assert error.hint and error.stage == "ehlo"


@pytest.mark.parametrize(
    ("stage", "scope"),
    [
        ("resolving", "session"),
        ("connecting", "session"),
        ("tls", "session"),
        ("ehlo", "session"),
        ("auth", "session"),
        ("mail", "message"),
        ("data", "message"),
        ("reply", "message"),
        ("rcpt", "recipient"),
    ],
)
def test_a_failure_before_any_mail_is_the_sessions_and_after_it_the_messages_or_recipients(
    stage: Stage, scope: Scope
) -> None:
    error = from_reply(SmtpReply(451, "4.3.0 try again later"), stage=stage, attempt=STARTTLS_587)
    assert error.scope == scope


@pytest.mark.parametrize(
    ("error", "before"),
    [
        (TemporaryDeliveryError("lost", hint="", stage="mail"), True),
        (TemporaryDeliveryError("lost", hint="", stage="rset"), True),
        (TemporaryDeliveryError("lost", hint="", stage="rcpt"), False),
        (TemporaryDeliveryError("lost", hint="", stage="data"), False),
        (PermanentDeliveryError("refused", hint="", stage="mail"), False),
    ],
)
def test_only_a_temporary_failure_before_the_transaction_leaves_the_message_unsent(
    error: DeliveryError, before: bool
) -> None:
    assert error.before_message is before
