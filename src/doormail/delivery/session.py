"""One SMTP connection per `smtp.*` settings: TLS per `smtp.security`, EHLO, AUTH only when a
username is set (never in the clear unless security is none), then any number of messages over
the same connection. It reports each stage for Apply & Test and raises classified errors; it
knows nothing about the outbox or retries."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType

import aiosmtplib

from doormail.delivery.errors import (
    Attempt,
    DeliveryError,
    PermanentDeliveryError,
    SmtpReply,
    Stage,
    TemporaryDeliveryError,
    from_exception,
    implicit_tls_port,
)
from doormail.delivery.pipelining import PipelinedConnection, Ready
from doormail.destinations import Unbound
from doormail.settings import Smtp

__all__ = [
    "AccessToken",
    "DeliveryError",
    "PermanentDeliveryError",
    "SmtpReply",
    "SmtpSession",
    "StageCallback",
    "TemporaryDeliveryError",
    "uses_implicit_tls",
]

StageCallback = Callable[[str, str], None]
# An async source of OAuth2 access tokens for `smtp.auth = xoauth2`; without one, the session
# fetches its own from `smtp.oauth2` (pass an OAuth2Tokens to keep tokens across sessions).
AccessToken = Callable[[], Awaitable[str]]

_IMPLICIT_TLS_PORT = 465
# The stored secrets each smtp.auth sends (the OAuth2 ones to the token URL, for a token that
# the SMTP server then gets).
_SECRETS_OF_AUTH = {
    "password": ("smtp.password",),
    "xoauth2": ("smtp.oauth2.client_secret", "smtp.oauth2.refresh_token"),
}
_QUIT_TIMEOUT = 5.0
# A plain connection that has had no greeting for this long may be talking to an implicit-TLS
# port (the server waits for a TLS hello, the client for "220"): a second connection then asks
# for TLS, so that the mistake is named within seconds instead of at the timeout.
TLS_PROBE_AFTER = 2.0
_TLS_PROBE_TIMEOUT = 2.0


def uses_implicit_tls(smtp: Smtp) -> bool:
    """TLS from the first byte: security tls, or auto on the smtps port 465."""
    return smtp.security == "tls" or (smtp.security == "auto" and smtp.port == _IMPLICIT_TLS_PORT)


def _ignore_stage(_stage: str, _message: str) -> None:
    pass


async def _speaks_tls(host: str, port: int) -> bool:
    """Whether `host:port` completes a TLS handshake (certificate not checked: only the
    protocol matters here)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        _reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context), _TLS_PROBE_TIMEOUT
        )
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), _TLS_PROBE_TIMEOUT)
    return True


class SmtpSession:
    """An open SMTP connection (`async with SmtpSession(...) as session`). `send()` may be called
    many times; the connection is reused, and opened again if the server closed it meanwhile.
    `tls_context` may be None only with `smtp.security = none`, which never starts TLS."""

    def __init__(
        self,
        smtp: Smtp,
        tls_context: ssl.SSLContext | None,
        *,
        on_stage: StageCallback | None = None,
        timeout: float = 30.0,
        access_token: AccessToken | None = None,
        withheld: Sequence[Unbound] = (),
    ) -> None:
        if tls_context is None and smtp.security != "none":
            raise ValueError(f"smtp.security {smtp.security} needs a TLS context")
        self._smtp = smtp
        self._tls_context = tls_context
        self._on_stage = on_stage or _ignore_stage
        self._timeout = timeout
        self._access_token = access_token
        # Stored secrets not given for this server (Apply & Test with changed settings): AUTH
        # stops where one of them would be sent.
        self._withheld = withheld
        self._client: aiosmtplib.SMTP | None = None
        # Set when the server offers PIPELINING: messages then go through it, not aiosmtplib.
        self._pipeline: PipelinedConnection | None = None
        self._stage: Stage = "connecting"
        self._encrypted = False
        # A transaction that failed midway leaves MAIL/RCPT state on the server: RSET first.
        self._unfinished = False
        self.attempt = Attempt(
            server=smtp.server,
            port=smtp.port,
            security=smtp.security,
            implicit_tls=uses_implicit_tls(smtp),
            timeout=timeout,
            xoauth2=smtp.auth == "xoauth2",
        )

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected

    async def __aenter__(self) -> SmtpSession:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect, TLS, EHLO and AUTH; raises DeliveryError."""
        self._close_now()
        try:
            await self._open()
        except Exception as error:
            self._close_now()
            raise await self._classified(error) from error
        except BaseException:
            self._close_now()
            raise

    async def close(self) -> None:
        """QUIT; a server that fails to answer it has already taken every message we sent."""
        client = self._client
        if self._pipeline is not None and self._pipeline.connected:
            await self._pipeline.quit(min(self._timeout, _QUIT_TIMEOUT))
        elif client is not None and client.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, ValueError):
                await client.quit(timeout=min(self._timeout, _QUIT_TIMEOUT))
        self._close_now()

    async def send(
        self,
        sender: str,
        recipient: str,
        data: bytes,
        *,
        then: tuple[str, str, bytes] | None = None,
        before_end: Ready | None = None,
    ) -> SmtpReply:
        """One message to one recipient; the server's reply to the end of DATA on success.
        `then` announces the mail that will be sent next (sender, recipient, data): with
        PIPELINING its envelope goes out with this message, saving a round trip.
        `before_end` is asked before the message's end of data (with PIPELINING) or its
        DATA command (without) is sent, and what it returns (unless None) awaited: the
        server takes the message only after that."""
        if not self.connected:
            await self.open()
        client = self._require_client()
        if self._pipeline is not None:
            options = self._mail_options(client, data)
            ahead = (
                None if then is None else (then[0], then[1], self._mail_options(client, then[2]))
            )
            try:
                return await self._pipeline.send(
                    sender, recipient, data, options, ahead, before_end
                )
            except Exception as error:
                raise await self._classified(error) from error
        try:
            if self._unfinished:
                self._stage = "rset"
                await client.rset()
            self._unfinished = True
            return await self._transaction(client, sender, recipient, data, before_end)
        except Exception as error:
            raise await self._classified(error) from error

    async def _transaction(
        self,
        client: aiosmtplib.SMTP,
        sender: str,
        recipient: str,
        data: bytes,
        before_end: Ready | None = None,
    ) -> SmtpReply:
        self._stage = "mail"
        reply = await client.mail(sender, options=self._mail_options(client, data))
        self._emit("mail", f"MAIL FROM:<{sender}> → {_text(reply)}")
        self._stage = "rcpt"
        reply = await client.rcpt(recipient)
        self._emit("rcpt", f"RCPT TO:<{recipient}> → {_text(reply)}")
        waiting = None if before_end is None else before_end()
        if waiting is not None:
            await waiting
        self._stage = "data"
        self._emit("data", f"DATA: {len(data)} bytes")
        # A server that drops the connection (or fails QUIT) after this reply has still taken
        # the message: the reply is what counts (Gmail is known to do this).
        reply = await client.data(data)
        self._unfinished = False
        self._emit("reply", _text(reply))
        return SmtpReply(reply.code, reply.message)

    @staticmethod
    def _mail_options(client: aiosmtplib.SMTP, data: bytes) -> list[str]:
        options = []
        if client.supports_extension("size"):
            options.append(f"SIZE={len(data)}")
        if client.supports_extension("8bitmime") and not data.isascii():
            options.append("BODY=8BITMIME")
        return options

    async def _open(self) -> None:
        smtp = self._smtp
        if not smtp.server:
            raise PermanentDeliveryError(
                "no SMTP server", hint="set smtp.server (host name or IP)", stage="connecting"
            )
        self._stage = "resolving"
        self._emit("resolving", await self._resolve())
        self._stage = "connecting"
        implicit = self.attempt.implicit_tls
        how = " (implicit TLS)" if implicit else ""
        self._emit("connecting", f"connecting to {smtp.server} port {smtp.port}{how}")
        client = aiosmtplib.SMTP(
            hostname=smtp.server,
            port=smtp.port,
            use_tls=implicit,
            start_tls=False,
            tls_context=self._tls_context,
            timeout=self._timeout,
        )
        self._client = client
        greeting = await self._connect(client)
        _set_nodelay(client)
        peer = client.get_transport_info("peername")
        where = f"{peer[0]} port {peer[1]}" if peer else smtp.server
        self._emit("connecting", f"connected to {where}: {_text(greeting)}")
        self._encrypted = implicit
        if implicit:
            self._stage = "tls"
            self._emit("tls", _tls_description(client))
        await self._ehlo(client)
        await self._maybe_starttls(client)
        await self._authenticate(client)
        if client.supports_extension("pipelining"):
            # RFC 2920: MAIL, RCPT and DATA in one write, so a message takes two round trips.
            self._pipeline = PipelinedConnection.take_over(
                client, attempt=self.attempt, timeout=self._timeout, emit=self._emit
            )

    async def _connect(self, client: aiosmtplib.SMTP) -> aiosmtplib.SMTPResponse:
        """The server's greeting; on a plain connection still silent after TLS_PROBE_AFTER,
        a PermanentDeliveryError when the port turns out to speak implicit TLS."""
        if self.attempt.implicit_tls:
            return await client.connect()
        connecting = asyncio.ensure_future(client.connect())
        done, _pending = await asyncio.wait({connecting}, timeout=TLS_PROBE_AFTER)
        if done or not await _speaks_tls(self._smtp.server, self._smtp.port):
            return await connecting
        connecting.cancel()
        with contextlib.suppress(BaseException):
            await connecting
        raise implicit_tls_port(self.attempt)

    async def _resolve(self) -> str:
        loop = asyncio.get_running_loop()
        infos = await asyncio.wait_for(
            loop.getaddrinfo(self._smtp.server, self._smtp.port, type=socket.SOCK_STREAM),
            self._timeout,
        )
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        return f"{self._smtp.server} → {', '.join(addresses)}"

    async def _ehlo(self, client: aiosmtplib.SMTP) -> None:
        self._stage = "ehlo"
        try:
            reply = await client.ehlo()
        except aiosmtplib.SMTPHeloError:
            if not client.is_connected:
                raise
            reply = await client.helo()
            self._emit("ehlo", f"EHLO refused; HELO → {_text(reply)}")
            return
        lines = reply.message.split("\n")
        extensions = ", ".join(line.strip() for line in lines[1:] if line.strip()) or "none"
        self._emit("ehlo", f"{lines[0]}; extensions: {extensions}")

    async def _maybe_starttls(self, client: aiosmtplib.SMTP) -> None:
        security = self._smtp.security
        if self._encrypted or security == "none":
            return
        offered = client.supports_extension("starttls")
        if not offered:
            if security == "starttls":
                raise PermanentDeliveryError(
                    "the server does not offer STARTTLS",
                    hint="set smtp.security to tls if this is an implicit-TLS port (465),"
                    " or to auto/none to send without encryption",
                    stage="tls",
                )
            self._emit("tls", "the server does not offer STARTTLS: continuing without TLS")
            return
        self._stage = "tls"
        reply = await client.starttls(tls_context=self._tls_context)
        _set_nodelay(client)
        self._encrypted = True
        self._emit("tls", f"STARTTLS → {_text(reply)}; {_tls_description(client)}")
        await self._ehlo(client)

    async def _authenticate(self, client: aiosmtplib.SMTP) -> None:
        smtp = self._smtp
        if not smtp.username:
            self._emit("auth", "no smtp.username: sending without authentication")
            return
        self._stage = "auth"
        if not self._encrypted and smtp.security != "none":
            raise PermanentDeliveryError(
                "refusing to send the password unencrypted",
                hint="the server offers no STARTTLS; use security tls on port 465 or starttls on"
                " port 587, or set smtp.security to none to allow AUTH in the clear",
                stage="auth",
            )
        if not client.supports_extension("auth"):
            raise PermanentDeliveryError(
                "the server does not offer AUTH",
                hint="clear smtp.username, or use the server's submission port"
                " (587 with STARTTLS, 465 with TLS)",
                stage="auth",
            )
        self._refuse_withheld()
        mechanism, reply = await self._auth_exchange(client)
        self._emit("auth", f"{mechanism} as {smtp.username} → {_text(reply)}")

    def _refuse_withheld(self) -> None:
        for unbound in self._withheld:
            if unbound.secret in _SECRETS_OF_AUTH[self._smtp.auth]:
                raise PermanentDeliveryError(
                    f"not logging in: {unbound.message}",
                    hint=f"give {unbound.secret} again together with the changed settings",
                    stage="auth",
                )

    async def _auth_exchange(self, client: aiosmtplib.SMTP) -> tuple[str, aiosmtplib.SMTPResponse]:
        smtp = self._smtp
        offered = client.server_auth_methods
        if smtp.auth == "xoauth2":
            if "xoauth2" not in offered:
                raise _unsupported_auth(offered, "XOAUTH2")
            if self._access_token is None:
                from doormail.delivery.oauth2 import OAuth2Tokens  # HTTP, only for XOAUTH2

                self._access_token = OAuth2Tokens(smtp.oauth2)
            token = await self._access_token()
            return "XOAUTH2", await client.auth_xoauth2(smtp.username, token)
        if "plain" in offered:
            return "PLAIN", await client.auth_plain(smtp.username, smtp.password)
        if "login" in offered:
            return "LOGIN", await client.auth_login(smtp.username, smtp.password)
        raise _unsupported_auth(offered, "PLAIN or LOGIN")

    async def _classified(self, error: Exception) -> DeliveryError:
        stage = self._stage
        certificate = None
        if _is_certificate_error(error):
            certificate = await self._unverified_certificate()
        classified = from_exception(
            error, stage=stage, attempt=self.attempt, certificate=certificate
        )
        if not self.connected or classified.code == 421:
            self._close_now()
        return classified

    async def _unverified_certificate(self) -> str | None:
        """The server certificate's names, fetched over a second connection that does not
        verify, so that an untrusted-certificate hint can say what the server showed."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        implicit = self.attempt.implicit_tls
        probe = aiosmtplib.SMTP(
            hostname=self._smtp.server,
            port=self._smtp.port,
            use_tls=implicit,
            start_tls=not implicit,
            tls_context=context,
            timeout=min(self._timeout, _QUIT_TIMEOUT),
        )
        try:
            await probe.connect()
            return _certificate_names(probe)
        except (aiosmtplib.SMTPException, OSError, ValueError):
            return None
        finally:
            probe.close()

    def _require_client(self) -> aiosmtplib.SMTP:
        if self._client is None:
            raise TemporaryDeliveryError(
                "not connected", hint="open the session first", stage=self._stage
            )
        return self._client

    def _close_now(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None
        self._pipeline = None
        self._encrypted = False
        self._unfinished = False

    def _emit(self, stage: str, message: str) -> None:
        self._on_stage(stage, message)


def _text(reply: aiosmtplib.SMTPResponse) -> str:
    return " ".join(f"{reply.code} {reply.message}".split())


def _unsupported_auth(offered: list[str], wanted: str) -> PermanentDeliveryError:
    names = " ".join(method.upper() for method in offered) or "none"
    return PermanentDeliveryError(
        f"the server offers AUTH {names}, not {wanted}",
        hint="choose smtp.auth to match what the server offers (password uses PLAIN or LOGIN)",
        stage="auth",
    )


def _is_certificate_error(error: BaseException) -> bool:
    link: BaseException | None = error
    while link is not None:
        if isinstance(link, ssl.SSLCertVerificationError):
            return link.verify_code != 62  # a host-name mismatch needs no second look
        link = link.__cause__ or link.__context__
    return False


def _set_nodelay(client: aiosmtplib.SMTP) -> None:
    # TLS records larger than a segment otherwise wait for a delayed ACK (Nagle): ~40 ms a mail.
    sock = client.get_transport_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _tls_description(client: aiosmtplib.SMTP) -> str:
    ssl_object = client.get_transport_info("ssl_object")
    if ssl_object is None:
        return "no TLS"
    cipher = ssl_object.cipher()
    names = _certificate_names(client) or "no server certificate"
    return f"{ssl_object.version()}, cipher {cipher[0] if cipher else '?'}; {names}"


def _certificate_names(client: aiosmtplib.SMTP) -> str | None:
    ssl_object = client.get_transport_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        return None
    from doormail.certificates.pem import (
        names,  # the X.509 library, only once a server has shown one
    )

    return names(der)
