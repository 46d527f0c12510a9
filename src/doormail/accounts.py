"""The admin account and the API tokens: how a caller proves who it is, and the session epoch
that ends an account's sessions. Passwords are kept only as Argon2id hashes; tokens only as their
SHA-256 (they are random, so a fast hash suffices)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, insert, select, update

from doormail.store import reading, tables

ADMIN = "admin"
_hasher = PasswordHasher()


class Accounts:
    """Checks credentials and keeps each account's session epoch. A verified password is
    remembered (as a keyed digest, in memory) so that an integration using HTTP Basic does not pay
    for Argon2 on every request."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._key = secrets.token_bytes(32)
        self._verified: dict[str, bytes] = {}

    def ensure_admin(self, password: str | None) -> str | None:
        """Create the admin account at first start. Returns the generated password when one was
        made (to be printed once), None when the account exists or a password was given."""
        with reading(self._engine) as connection:
            exists = connection.execute(
                select(tables.accounts.c.name).where(tables.accounts.c.name == ADMIN)
            ).first()
        if exists:
            return None
        generated = None if password else secrets.token_urlsafe(12)
        with self._engine.begin() as connection:
            connection.execute(
                insert(tables.accounts).values(
                    name=ADMIN, password_hash=_hasher.hash(password or str(generated))
                )
            )
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

    def create_token(self, name: str) -> str:
        """A new bearer token under `name` (replacing an older one of that name), shown once."""
        token = "dm_" + secrets.token_urlsafe(32)
        with self._engine.begin() as connection:
            connection.execute(delete(tables.tokens).where(tables.tokens.c.name == name))
            connection.execute(
                insert(tables.tokens).values(
                    name=name, token_hash=_token_hash(token), created_at=time.time()
                )
            )
        return token

    def check_token(self, token: str) -> str | None:
        """The token's name, or None when no such token exists."""
        with reading(self._engine) as connection:
            return connection.execute(
                select(tables.tokens.c.name).where(tables.tokens.c.token_hash == _token_hash(token))
            ).scalar()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
