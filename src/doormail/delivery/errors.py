"""What can go wrong in an SMTP session and what to fix: the error classes the outbox acts on
(temporary → retry until the deadline, permanent → failed), the stage each happened at and the
scope that stage gives it (the session, the message or one recipient, Postfix's classes), and
the classification of server replies and socket/TLS failures, each with a hint for the person
reading it."""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import aiosmtplib

__all__ = [
    "Attempt",
    "DeliveryError",
    "PermanentDeliveryError",
    "Scope",
    "SmtpReply",
    "Stage",
    "TemporaryDeliveryError",
    "from_exception",
    "from_reply",
    "implicit_tls_port",
]

PORT_HINT = "port 465 uses implicit TLS (smtp.security tls); 587 and 25 use STARTTLS"
AUTH_HINT = "check username and password (Gmail/Microsoft 365 need an app password)"
NEEDS_AUTH_HINT = "the server requires authentication: set smtp.username"
RELAY_HINT = (
    "the server refuses to relay for this sender/recipient: authenticate or allow this From address"
)
CA_HINT = "choose the CA set that signed it in smtp.ca, or upload it to ca1..3"
DNS_HINT = "the server name does not resolve: check smtp.server"

# OpenSSL reasons seen when a TLS client talks to a port that answers in plain text.
_PLAIN_PORT_REASONS = ("WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "RECORD_LAYER_FAILURE")
_PLAIN_PORT_TEXTS = ("packet length too long", "record layer failure", "wrong version number")
_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")

# Where in a session something went wrong; `unknown` is an error the session did not classify.
Stage = Literal[
    "resolving",
    "connecting",
    "tls",
    "ehlo",
    "auth",
    "rset",
    "mail",
    "rcpt",
    "data",
    "reply",
    "unknown",
]
# What a failure is about, as Postfix tells them apart: the session (server down, TLS, AUTH:
# every mail waiting for this server shares it, and is tried again later), the message (a
# refusal of its transaction or its content) or one recipient (a refused RCPT).
Scope = Literal["session", "message", "recipient"]
_SCOPES: Mapping[Stage, Scope] = {
    "resolving": "session",
    "connecting": "session",
    "tls": "session",
    "ehlo": "session",
    "auth": "session",
    "rset": "message",
    "mail": "message",
    "rcpt": "recipient",
    "data": "message",
    "reply": "message",
    "unknown": "message",
}
# Stages before a message's transaction got anywhere: a connection dropped there means the
# message never left (the server closed an idle connection, or closed it after its last 250).
_BEFORE_MESSAGE: frozenset[Stage] = frozenset({"rset", "mail"})
# Stages where a temporary failure means that the server is not there (SPEC section 8).
_UNREACHABLE: frozenset[Stage] = frozenset({"resolving", "connecting"})


@dataclass(frozen=True)
class SmtpReply:
    """A server reply, e.g. `250 2.0.0 Ok: queued as 4Xyz`."""

    code: int
    message: str

    def __str__(self) -> str:
        return f"{self.code} {self.message}".strip()


class DeliveryError(Exception):
    """A message could not be handed over. `temporary` says whether trying later may help;
    `reply` keeps the server's own words, `hint` says what to fix, `stage` where it happened."""

    temporary = False

    def __init__(
        self, message: str, *, hint: str, stage: Stage, code: int | None = None, reply: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.stage = stage
        self.code = code
        self.reply = reply

    def __str__(self) -> str:
        return self.message

    @property
    def scope(self) -> Scope:
        """Whether this failure is the session's, the message's or its recipient's."""
        return _SCOPES[self.stage]

    @property
    def unreachable(self) -> bool:
        """The server did not answer at all (refused, timeout, 421 at greeting, its name did
        not resolve): a matter of the server as a whole, not of any one mail."""
        return self.temporary and self.stage in _UNREACHABLE

    @property
    def before_message(self) -> bool:
        """A temporary failure before the message's transaction began: when the connection is
        gone, the message never left and may go at once on a new connection."""
        return self.temporary and self.stage in _BEFORE_MESSAGE


class TemporaryDeliveryError(DeliveryError, ConnectionError):
    """The server was unreachable or answered 4xx: try again later, until `deliver_in` passes."""

    temporary = True


class PermanentDeliveryError(DeliveryError):
    """A 5xx reply, or a setting that cannot work: trying again sends the same thing in vain."""

    temporary = False


@dataclass(frozen=True)
class Attempt:
    """What the session was trying, so that a hint can speak of the actual settings."""

    server: str
    port: int
    security: str
    implicit_tls: bool
    timeout: float
    xoauth2: bool = False


def from_reply(reply: SmtpReply, *, stage: Stage, attempt: Attempt) -> DeliveryError:
    """A refusal by the server (any reply other than the expected one), classified by code."""
    text = f"{stage.upper()} refused: {reply}" if stage not in ("connecting", "reply") else ""
    message = text or f"the server answered {reply}"
    kind: type[DeliveryError]
    kind = TemporaryDeliveryError if 400 <= reply.code < 500 else PermanentDeliveryError
    hint = _reply_hint(reply, stage, attempt)
    return kind(message, hint=hint, stage=stage, code=reply.code, reply=str(reply))


def _enhanced(reply: SmtpReply) -> str:
    found = _ENHANCED.match(reply.message)
    return ".".join(found.groups()) if found else ""


def _reply_hint(reply: SmtpReply, stage: Stage, attempt: Attempt) -> str:
    code, text, enhanced = reply.code, reply.message.lower(), _enhanced(reply)
    if 400 <= code < 500:
        return _temporary_hint(code, stage)
    if code in (534, 535) or (stage == "auth" and code >= 500):
        if attempt.xoauth2:
            return "the server refused the OAuth2 token: check smtp.oauth2 (client, refresh token, scope)"
        return AUTH_HINT
    if code == 530 or enhanced == "5.7.0":
        if "starttls" in text or "tls" in text.split():
            return "the server requires STARTTLS first: set smtp.security to starttls or auto"
        return NEEDS_AUTH_HINT
    if code == 538:
        return "the server requires encryption before authentication: set smtp.security to starttls or tls"
    if code == 552 or enhanced in ("5.3.4", "5.2.3"):
        return "the message is larger than the server accepts: lower smtp.max_message_bytes or the snapshots' count/resolution"
    if stage == "rcpt" and (enhanced == "5.7.1" or "relay" in text):
        return RELAY_HINT
    if stage == "mail":
        return (
            "the server refuses this sender: set smtp.from to an address this account may send from"
        )
    if stage == "rcpt":
        return "the server refuses this recipient: check the address"
    if stage == "connecting":
        return "the server refuses connections from this host: ask its administrator to allow it"
    if stage == "data" or stage == "reply":
        return "the server refused the message itself (policy, spam filter or size): read its reply above"
    if stage == "tls":
        return "the server cannot start TLS: set smtp.security to tls on port 465, or none"
    return "the server refused the request: read its reply above"


def _temporary_hint(code: int, stage: Stage) -> str:
    if code == 421:
        return "the server is busy or closing the session; doormail tries again until smtp.deliver_in runs out"
    if stage == "auth":
        return "the server could not check the credentials just now; doormail tries again"
    if stage == "tls":
        return "the server cannot start TLS just now; doormail tries again"
    return "the server cannot take the mail just now; doormail tries again until smtp.deliver_in runs out"


def from_exception(
    error: BaseException,
    *,
    stage: Stage,
    attempt: Attempt,
    certificate: str | None = None,
) -> DeliveryError:
    """A failure raised by aiosmtplib or the socket layer, classified. `certificate` names the
    server certificate ("subject …, issuer …") when the caller could fetch it after a failed
    verification."""
    if isinstance(error, DeliveryError):
        return error
    if isinstance(error, aiosmtplib.SMTPResponseException) and error.code >= 0:
        return from_reply(SmtpReply(error.code, error.message), stage=stage, attempt=attempt)
    chain = list(_chain(error))
    for link in chain:
        if isinstance(link, ssl.SSLCertVerificationError):
            return _certificate_error(link, stage, attempt, certificate)
    for link in chain:
        if isinstance(link, ssl.SSLError) and not isinstance(
            link, ssl.SSLEOFError | ssl.SSLZeroReturnError
        ):
            return _tls_error(link, stage, attempt)
    for link in chain:
        if isinstance(link, socket.gaierror):
            return TemporaryDeliveryError(
                f"{attempt.server} does not resolve ({link.strerror})", hint=DNS_HINT, stage=stage
            )
    if any(isinstance(link, TimeoutError) for link in chain):
        return _timeout_error(error, stage, attempt)
    for link in chain:
        if isinstance(link, ConnectionRefusedError):
            return TemporaryDeliveryError(
                f"connection to {attempt.server}:{attempt.port} refused",
                hint="nothing listens on that port: check smtp.server and smtp.port (or the server is down)",
                stage=stage,
            )
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return PermanentDeliveryError(
            f"the server's answer is not SMTP: {error.message}",
            hint=f"check smtp.port and smtp.security: {PORT_HINT}",
            stage=stage,
        )
    return _connection_error(error, stage, attempt)


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    link: BaseException | None = error
    while link is not None and link not in seen:
        seen.append(link)
        link = link.__cause__ or link.__context__
    return seen


def _certificate_error(
    error: ssl.SSLCertVerificationError, stage: Stage, attempt: Attempt, certificate: str | None
) -> DeliveryError:
    reason = error.verify_message or "verification failed"
    found = f" (server certificate: {certificate})" if certificate else ""
    if error.verify_code == 62:  # X509_V_ERR_HOSTNAME_MISMATCH
        hint = (
            f"the server certificate is not issued for {attempt.server}{found}: set smtp.server"
            " to a name the certificate lists, or turn off smtp.verify_certificate"
        )
    elif error.verify_code == 10:  # X509_V_ERR_CERT_HAS_EXPIRED
        hint = (
            f"the server certificate has expired{found}: the server's administrator must renew it"
        )
    else:
        hint = f"the server certificate is not trusted{found}: {CA_HINT}"
    return PermanentDeliveryError(
        f"certificate verification failed: {reason}", hint=hint, stage="tls"
    )


def _tls_error(error: ssl.SSLError, stage: Stage, attempt: Attempt) -> DeliveryError:
    reason = str(getattr(error, "reason", None) or error.strerror or error)
    plain_port = reason.upper() in _PLAIN_PORT_REASONS or any(
        text in str(error).lower() for text in _PLAIN_PORT_TEXTS
    )
    if plain_port and attempt.implicit_tls:
        return PermanentDeliveryError(
            f"port {attempt.port} does not speak TLS: it answered in plain text ({reason})",
            hint=f"port {attempt.port} speaks plain SMTP: set smtp.security to starttls",
            stage="tls",
        )
    return PermanentDeliveryError(
        f"the TLS handshake failed: {reason}",
        hint=(
            "the server and doormail agree on no TLS version or cipher, or the server refused"
            f" the client certificate (smtp.certificate); {PORT_HINT}"
        ),
        stage="tls",
    )


def implicit_tls_port(attempt: Attempt) -> DeliveryError:
    """A plain connection to a port that sent no greeting but completed a TLS handshake."""
    return PermanentDeliveryError(
        f"port {attempt.port} sent no SMTP greeting but answers TLS: it is an implicit-TLS port",
        hint=f"port {attempt.port} speaks implicit TLS: set smtp.security to tls",
        stage="connecting",
    )


def _timeout_error(error: BaseException, stage: Stage, attempt: Attempt) -> DeliveryError:
    hint = f"nothing answered within {attempt.timeout:g} s: check server address, port and firewall"
    if "ready message" in str(error) and not attempt.implicit_tls:
        hint += f"; the port accepted the connection but sent no greeting: {PORT_HINT}"
    where = f"{attempt.server}:{attempt.port}"
    return TemporaryDeliveryError(f"no answer from {where} ({stage})", hint=hint, stage=stage)


def _connection_error(error: BaseException, stage: Stage, attempt: Attempt) -> DeliveryError:
    detail = str(error) or type(error).__name__
    return TemporaryDeliveryError(
        f"connection to {attempt.server}:{attempt.port} lost during {stage}: {detail}",
        hint="the server closed the connection; doormail tries again until smtp.deliver_in runs out",
        stage=stage,
    )
