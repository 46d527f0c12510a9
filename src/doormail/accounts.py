"""The admin account and the API tokens: how a caller proves who it is, and what it may do,
and the session epoch that ends an account's sessions. Passwords are kept only as Argon2id
hashes; tokens only as their SHA-256 (they are random, so a fast hash suffices). A token's scope
is `events` (a door station: post events and send e-mail) or `admin` (everything, like the admin
account)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Literal, get_args

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import OperationalError

from doormail.store import reading, tables

log = logging.getLogger("doormail.accounts")

ADMIN = "admin"
_hasher = PasswordHasher()

Scope = Literal["events", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
DEFAULT_SCOPE: Scope = "events"
# A token's last use is written at most this often: one database write per request would queue
# every event behind SQLite's single write lock for the sake of a timestamp.
LAST_USE_RESOLUTION = 60.0
MAX_TOKEN_NAME = 128


class TokenError(ValueError):
    """A token request that cannot be met; `field` names the argument (name, scope)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Caller:
    """Who made a request, and what it may do."""

    name: str
    scope: Scope


@dataclass(frozen=True)
class TokenInfo:
    """A token as it may be shown: never the token itself nor its hash."""

    name: str
    scope: Scope
    created_at: float
    last_used_at: float | None


class Accounts:
    """Checks credentials and keeps each account's session epoch. A verified password is
    remembered (as a keyed digest, in memory) so that an integration using HTTP Basic does not pay
    for Argon2 on every request."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._key = secrets.token_bytes(32)
        self._verified: dict[str, bytes] = {}
        self._last_use: dict[str, float] = {}

    def ensure_admin(self, password: str | None) -> str | None:
        """Create the admin account at first start. Returns the generated password when one was
        made (to be printed once), None when the account exists or a password was given."""
        with reading(self._engine) as connection:
            exists = connection.execute(
                select(tables.accounts.c.name).where(tables.accounts.c.name == ADMIN)
            ).first()
        if exists:
            return None
        generated = None if password else new_password()
        with self._engine.begin() as connection:
            connection.execute(
                insert(tables.accounts).values(
                    name=ADMIN, password_hash=_hasher.hash(password or str(generated))
                )
            )
        return generated

    def reset_admin(self, password: str | None) -> str | None:
        """The way back in (`doormail admin password`): the admin's password becomes `password`,
        or a generated one that is returned to be printed; every session ends."""
        generated = None if password else new_password()
        chosen = password or str(generated)
        self.ensure_admin(chosen)  # an installation whose serve never ran has no account yet
        self.set_password(ADMIN, chosen)
        return generated

    def set_password(self, name: str, password: str) -> None:
        """A new password for `name`; it ends every session of the account, in every process."""
        with self._engine.begin() as connection:
            connection.execute(
                update(tables.accounts)
                .where(tables.accounts.c.name == name)
                .values(
                    password_hash=_hasher.hash(password),
                    session_epoch=tables.accounts.c.session_epoch + 1,
                )
            )
        self._forget_verified(name)

    def remembered(self, name: str, password: str) -> bool:
        """True when this password was verified before against `name`'s current hash: the
        cheap path, without Argon2."""
        stored = self._stored_hash(name)
        return stored is not None and self._was_verified(name, stored, password)

    def check_password(self, name: str, password: str) -> bool:
        """True for `name`'s password. Costs an Argon2 check (64 MiB, a tenth of a second) unless
        it was verified before, also for an unknown name."""
        stored = self._stored_hash(name)
        if stored is None:
            _hasher.hash(password)  # same cost for unknown names: no user enumeration by timing
            return False
        if self._was_verified(name, stored, password):
            return True
        try:
            _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False
        self._verified[f"{name}\0{stored}"] = self._digest(name, password)
        return True

    def session_epoch(self, name: str) -> int | None:
        """The account's session epoch (a session made under an older one is over); None when
        there is no such account."""
        with reading(self._engine) as connection:
            epoch = connection.execute(
                select(tables.accounts.c.session_epoch).where(tables.accounts.c.name == name)
            ).scalar()
        return None if epoch is None else int(epoch)

    def end_sessions(self, name: str) -> None:
        """End every session of the account at once (logout)."""
        with self._engine.begin() as connection:
            connection.execute(
                update(tables.accounts)
                .where(tables.accounts.c.name == name)
                .values(session_epoch=tables.accounts.c.session_epoch + 1)
            )

    def _stored_hash(self, name: str) -> str | None:
        with reading(self._engine) as connection:
            return connection.execute(
                select(tables.accounts.c.password_hash).where(tables.accounts.c.name == name)
            ).scalar()

    def _digest(self, name: str, password: str) -> bytes:
        return hmac.new(self._key, f"{name}\0{password}".encode(), "sha256").digest()

    def _was_verified(self, name: str, stored: str, password: str) -> bool:
        cached = self._verified.get(f"{name}\0{stored}")
        return cached is not None and hmac.compare_digest(cached, self._digest(name, password))

    def _forget_verified(self, name: str) -> None:
        for key in list(self._verified):
            if key.startswith(f"{name}\0"):
                self._verified.pop(key, None)

    def create_token(self, name: str, scope: str = DEFAULT_SCOPE) -> str:
        """A new bearer token under `name` (replacing an older one of that name), shown once.
        TokenError names a bad name or scope."""
        _check_token_name(name)
        if scope not in SCOPES:
            raise TokenError("scope", f"must be {' or '.join(SCOPES)}, not {scope!r}")
        token = "dm_" + secrets.token_urlsafe(32)
        with self._engine.begin() as connection:
            connection.execute(delete(tables.tokens).where(tables.tokens.c.name == name))
            connection.execute(
                insert(tables.tokens).values(
                    name=name, token_hash=_token_hash(token), created_at=time.time(), scope=scope
                )
            )
        self._last_use.pop(name, None)
        return token

    def check_token(self, token: str) -> Caller | None:
        """Who the token is and its scope, or None when no such token exists. Its last use is
        recorded, at most once every LAST_USE_RESOLUTION seconds."""
        t = tables.tokens.c
        with reading(self._engine) as connection:
            row = connection.execute(
                select(t.name, t.scope, t.last_used_at).where(t.token_hash == _token_hash(token))
            ).first()
        if row is None:
            return None
        self._record_use(row.name, row.last_used_at)
        return Caller(row.name, _scope(row.scope))

    def _record_use(self, name: str, stored: float | None) -> None:
        now = time.time()
        # The in-memory mark keeps a burst of concurrent requests to one write between them.
        last = max(stored or 0.0, self._last_use.get(name, 0.0))
        if now - last < LAST_USE_RESOLUTION:
            return
        self._last_use[name] = now
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    update(tables.tokens)
                    .where(tables.tokens.c.name == name)
                    .values(last_used_at=now)
                )
        except OperationalError as error:  # a busy database must not refuse the request
            log.warning("could not record the use of token %s: %s", name, error)

    def tokens(self) -> list[TokenInfo]:
        """Every token, by name."""
        t = tables.tokens.c
        with reading(self._engine) as connection:
            rows = connection.execute(
                select(t.name, t.scope, t.created_at, t.last_used_at).order_by(t.name)
            ).all()
        return [
            TokenInfo(row.name, _scope(row.scope), row.created_at, row.last_used_at) for row in rows
        ]

    def revoke_token(self, name: str) -> bool:
        """Delete the token `name`; False when there is none of that name."""
        with self._engine.begin() as connection:
            deleted = connection.execute(
                delete(tables.tokens).where(tables.tokens.c.name == name)
            ).rowcount
        self._last_use.pop(name, None)
        return bool(deleted)


def new_password() -> str:
    """A generated password: 16 URL-safe characters, 96 random bits."""
    return secrets.token_urlsafe(12)


def _check_token_name(name: str) -> None:
    # The name is shown in tables and named in a URL path (DELETE /api/tokens/NAME).
    if not name or len(name) > MAX_TOKEN_NAME:
        raise TokenError("name", f"must be 1 to {MAX_TOKEN_NAME} characters")
    if not name.isprintable() or any(c.isspace() or c == "/" for c in name):
        raise TokenError("name", "must be printable, without spaces or /")


def _scope(stored: str) -> Scope:
    # Anything but "admin" gets the narrower scope.
    return "admin" if stored == "admin" else "events"


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
