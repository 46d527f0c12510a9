"""HTTP authentication of the emulated intercom (manual section 3, "HTTP API Services
Security"): Basic and Digest (RFC 7616 with MD5 and qop=auth), offered one, the other or both
(Basic first), checked against the intercom's API accounts."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from typing import Literal

AuthMethods = Literal["digest", "basic", "both", "none"]
REALM = "HTTP API"

# The privileges of the manual's event table and camera service, by short name:
# "Call/phone monitoring", "UID monitoring (cards/Wiegand)", "Keypad monitoring",
# "I/O monitoring" and "Camera monitoring".
PRIVILEGES = frozenset({"call", "uid", "keypad", "io", "camera"})

_PARAM = re.compile(r'([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


@dataclass(frozen=True)
class Account:
    """An API account of the intercom's Services / HTTP API / Account page."""

    user: str
    password: str
    privileges: frozenset[str] = field(default_factory=lambda: PRIVILEGES)


@dataclass(frozen=True)
class Refused:
    """Why a request's credentials were refused: the manual's error code and whether a Digest
    nonce was merely stale (issued before the intercom restarted)."""

    code: int
    stale: bool = False


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


class Authenticator:
    """Checks the Authorization header of a request against the accounts."""

    def __init__(self, accounts: list[Account], methods: AuthMethods) -> None:
        self.accounts = {account.user: account for account in accounts}
        self.methods = methods
        self._secret = secrets.token_bytes(16)

    def forget_nonces(self) -> None:
        """A restart: the nonces issued so far become stale."""
        self._secret = secrets.token_bytes(16)

    def challenges(self, stale: bool = False) -> list[tuple[bytes, bytes]]:
        """The WWW-Authenticate headers of a 401 reply, Basic first when both are offered."""
        headers = []
        if self.methods in ("basic", "both"):
            headers.append((b"WWW-Authenticate", f'Basic realm="{REALM}"'.encode()))
        if self.methods in ("digest", "both"):
            nonce = self._nonce()
            value = f'Digest realm="{REALM}", qop="auth", nonce="{nonce}", algorithm=MD5'
            if stale:
                value += ", stale=true"
            headers.append((b"WWW-Authenticate", value.encode()))
        return headers

    def check(self, method: str, target: str, authorization: str | None) -> Account | Refused:
        """The account a request authenticates as, or why it does not."""
        if self.methods == "none":
            return Account("", "")
        if not authorization:
            return Refused(9)  # authorisation required
        scheme, _, credentials = authorization.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "basic" and self.methods in ("basic", "both"):
            return self._basic(credentials)
        if scheme == "digest" and self.methods in ("digest", "both"):
            return self._digest(method, target, credentials)
        return Refused(8)  # invalid authentication method

    def _basic(self, credentials: str) -> Account | Refused:
        try:
            user, _, password = base64.b64decode(credentials, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return Refused(9)
        account = self.accounts.get(user)
        if account is None or not hmac.compare_digest(account.password, password):
            return Refused(9)
        return account

    def _digest(self, method: str, target: str, credentials: str) -> Account | Refused:
        fields = {
            m[1].lower(): m[2] if m[2] is not None else m[3] for m in _PARAM.finditer(credentials)
        }
        account = self.accounts.get(fields.get("username", ""))
        nonce = fields.get("nonce", "")
        if account is None or fields.get("realm") != REALM or fields.get("uri") != target:
            return Refused(9)
        if fields.get("algorithm", "MD5").upper() != "MD5":
            return Refused(9)
        if not self._nonce_is_ours(nonce):
            return Refused(9, stale=self._nonce_is_well_formed(nonce))
        ha1 = _md5(f"{account.user}:{REALM}:{account.password}")
        ha2 = _md5(f"{method}:{target}")
        qop = fields.get("qop")
        if qop == "auth":
            data = f"{nonce}:{fields.get('nc', '')}:{fields.get('cnonce', '')}:auth:{ha2}"
        elif qop is None:
            data = f"{nonce}:{ha2}"  # RFC 2069 clients
        else:
            return Refused(9)
        if not hmac.compare_digest(_md5(f"{ha1}:{data}"), fields.get("response", "")):
            return Refused(9)
        return account

    # A nonce is random text signed with a secret, so any number of clients can keep using
    # theirs without the intercom remembering them; a restart changes the secret.
    def _nonce(self) -> str:
        stamp = secrets.token_hex(8)
        return stamp + self._sign(stamp)

    def _sign(self, stamp: str) -> str:
        return hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]

    def _nonce_is_ours(self, nonce: str) -> bool:
        stamp, signature = nonce[:16], nonce[16:]
        return self._nonce_is_well_formed(nonce) and hmac.compare_digest(
            signature, self._sign(stamp)
        )

    @staticmethod
    def _nonce_is_well_formed(nonce: str) -> bool:
        return len(nonce) == 48 and all(c in "0123456789abcdef" for c in nonce)
