"""OAuth2 access tokens for `smtp.auth = xoauth2` (SPEC section 9): the refresh-token grant
against `smtp.oauth2.token_url`, each token kept until shortly before it expires."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from doormail.delivery.errors import (
    DeliveryError,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)
from doormail.settings import OAuth2

__all__ = ["OAuth2Tokens"]

DEFAULT_LIFETIME = 3600.0
REFRESH_MARGIN = 60.0
TIMEOUT = 20.0


class OAuth2Tokens:
    """An async callable giving a valid access token, fetching a new one only when the last is
    within `margin` seconds of expiry. One instance may serve many SMTP sessions."""

    def __init__(
        self,
        oauth2: OAuth2,
        *,
        client: httpx.AsyncClient | None = None,
        margin: float = REFRESH_MARGIN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._oauth2 = oauth2
        self._client = client
        self._margin = margin
        self._clock = clock
        self._refresh_token = oauth2.refresh_token
        self._token = ""
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def __call__(self) -> str:
        async with self._lock:
            if not self._token or self._clock() >= self._expires - self._margin:
                await self._refresh()
            return self._token

    async def _refresh(self) -> None:
        for key in ("token_url", "client_id", "refresh_token"):
            if not getattr(self._oauth2, key):
                raise PermanentDeliveryError(
                    f"smtp.oauth2.{key} is empty",
                    hint=f"fill in smtp.oauth2.{key} (required when smtp.auth is xoauth2)",
                    stage="auth",
                )
        form = {
            "grant_type": "refresh_token",
            "refresh_token": self._refresh_token,
            "client_id": self._oauth2.client_id,
        }
        if self._oauth2.client_secret:
            form["client_secret"] = self._oauth2.client_secret
        if self._oauth2.scope:
            form["scope"] = self._oauth2.scope
        body = await self._post(form)
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise PermanentDeliveryError(
                "the token endpoint answered without an access_token",
                hint="check smtp.oauth2.token_url: it must be the provider's OAuth2 token endpoint",
                stage="auth",
            )
        lifetime = body.get("expires_in", DEFAULT_LIFETIME)
        self._token = token
        self._expires = self._clock() + float(
            lifetime if isinstance(lifetime, int | float) else DEFAULT_LIFETIME
        )
        # Providers that rotate refresh tokens (Microsoft identity platform) send a new one.
        rotated = body.get("refresh_token")
        if isinstance(rotated, str) and rotated:
            self._refresh_token = rotated

    async def _post(self, form: dict[str, str]) -> dict[str, Any]:
        url = self._oauth2.token_url
        try:
            if self._client is not None:
                response = await self._client.post(url, data=form, timeout=TIMEOUT)
            else:
                async with httpx.AsyncClient(timeout=TIMEOUT) as client:
                    response = await client.post(url, data=form)
        except httpx.HTTPError as error:
            raise TemporaryDeliveryError(
                f"the OAuth2 token endpoint did not answer: {type(error).__name__} {error}".strip(),
                hint="check smtp.oauth2.token_url and that this host can reach it",
                stage="auth",
            ) from error
        return _token_body(response)


def _token_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    if response.is_success:
        return body
    error = str(body.get("error", "")) or f"HTTP {response.status_code}"
    description = str(body.get("error_description", "")).splitlines()[0:1]
    text = f"the OAuth2 token endpoint refused the refresh: {error}"
    if description:
        text += f" ({description[0]})"
    failure: DeliveryError
    if response.status_code >= 500 or response.status_code == 429:
        failure = TemporaryDeliveryError(
            text,
            hint="the token endpoint is unavailable just now; doormail tries again",
            stage="auth",
        )
    elif error == "invalid_grant":
        failure = PermanentDeliveryError(
            text,
            hint="the refresh token is no longer valid: sign in again and store the new one in"
            " smtp.oauth2.refresh_token",
            stage="auth",
        )
    else:
        failure = PermanentDeliveryError(
            text,
            hint="check smtp.oauth2 client_id, client_secret and scope with the provider's app registration",
            stage="auth",
        )
    raise failure
