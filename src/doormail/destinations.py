"""Where each stored secret is sent, and the rule that binds it there (SPEC section 1): a change
of a secret's destination that does not give the secret again must not carry the stored one to
the new place. Also the password a URL may hold (`rtsp://user:pw@host/`): shown as `***`, and
taken from the stored URL only while the URL still points at the same host.

It works on settings documents (plain dicts), so the settings model can use it without a cycle."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MASK = "***"

# What decides where the SMTP login goes; the authentication method too, since switching it
# changes which stored secret is sent.
_SMTP_SERVER = ("smtp.server", "smtp.port", "smtp.security", "smtp.auth")


@dataclass(frozen=True)
class Binding:
    """A secret (dotted path), what the messages call it, and the settings that say where it
    is sent. URL settings (`...url`) count by scheme, host and port only."""

    secret: str
    name: str
    destination: tuple[str, ...]


BINDINGS = (
    # Sent to the SMTP server by AUTH PLAIN/LOGIN.
    Binding("smtp.password", "SMTP password", _SMTP_SERVER),
    # Sent to the token URL; the access token they buy goes on to the SMTP server.
    Binding(
        "smtp.oauth2.client_secret",
        "OAuth2 client secret",
        ("smtp.oauth2.token_url", *_SMTP_SERVER),
    ),
    Binding(
        "smtp.oauth2.refresh_token",
        "OAuth2 refresh token",
        ("smtp.oauth2.token_url", *_SMTP_SERVER),
    ),
    Binding("camera.password", "camera password", ("camera.url",)),
    Binding("sources.mqtt.password", "MQTT password", ("sources.mqtt.url",)),
)

# URL settings whose own password (user:pw@) is a secret: shown masked, kept while the host is.
URLS_WITH_PASSWORDS = ("camera.url",)

_DEFAULT_PORTS = {"http": 80, "https": 443, "rtsp": 554, "rtsps": 322, "mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class Unbound:
    """A stored secret that a change would send somewhere else: `changed` is the setting that
    moved it."""

    secret: str
    name: str
    changed: str

    @property
    def message(self) -> str:
        return (
            f"{self.changed} changed, so {self.secret} must be given again: the stored"
            f" {self.name} is not sent to a new destination"
        )


def unbound_secrets(
    stored: Mapping[str, Any], given: Mapping[str, Any], updated: Mapping[str, Any]
) -> list[Unbound]:
    """The secrets set in `stored` that `updated` would send somewhere else, and that the
    request `given` does not name (naming one, even as "", gives it again)."""
    found = []
    for binding in BINDINGS:
        if not lookup(stored, binding.secret) or _names(given, binding.secret):
            continue
        for path in binding.destination:
            if _where(path, lookup(stored, path)) != _where(path, lookup(updated, path)):
                found.append(Unbound(binding.secret, binding.name, path))
                break
    return found


def mask_url(url: str) -> str:
    """`url` with the password of its user information shown as `***`."""
    parts = _split(url)
    if parts is None or not parts.password:
        return url
    return parts.join(MASK)


def has_masked_password(url: str) -> bool:
    parts = _split(url)
    return parts is not None and parts.password == MASK


def unmask_url(given: str, stored: str) -> str | None:
    """`given` (holding `***` for its password) with the stored URL's password put back, or
    None when that would send the password elsewhere (another scheme, host or port) or no
    password is stored."""
    given_parts, stored_parts = _split(given), _split(stored)
    if given_parts is None or stored_parts is None or not stored_parts.password:
        return None
    if given_parts.origin() != stored_parts.origin():
        return None
    return given_parts.join(stored_parts.password)


def lookup(document: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path of a settings document (None when absent)."""
    node: Any = document
    for key in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _names(document: Mapping[str, Any], path: str) -> bool:
    *parents, last = path.split(".")
    node = lookup(document, ".".join(parents)) if parents else document
    return isinstance(node, Mapping) and last in node


def _where(path: str, value: Any) -> Any:
    if isinstance(value, str) and path.endswith("url"):
        parts = _split(value)
        return parts.origin() if parts else value.strip().lower()
    return value.strip().lower() if isinstance(value, str) else value


@dataclass(frozen=True)
class _UrlParts:
    """A URL cut around its password: `before` + password + `after`, or, without one, as is."""

    scheme: str
    user: str | None  # the user information before the password's colon, or None without "@"
    password: str | None
    host_port: str
    prefix: str  # "scheme://"
    rest: str  # path, query and fragment

    def origin(self) -> tuple[str, str, int | None]:
        host, port = self.host_port.lower(), None
        if not host.endswith("]") and ":" in host:
            host, _, number = host.rpartition(":")
            port = int(number) if number.isdigit() else None
        return self.scheme, host, port or _DEFAULT_PORTS.get(self.scheme)

    def join(self, password: str) -> str:
        return f"{self.prefix}{self.user}:{password}@{self.host_port}{self.rest}"


def _split(url: str) -> _UrlParts | None:
    # By hand rather than urllib.parse: that refuses some malformed URLs (an open "[") with an
    # error, and a password must be found and hidden in those too.
    scheme, separator, _ = url.partition("://")
    if not separator or not scheme:
        return None
    start = len(scheme) + 3
    end = min((i for i in (url.find(c, start) for c in "/?#") if i >= 0), default=len(url))
    user_info, at, host_port = url[start:end].rpartition("@")
    user, colon, password = user_info.partition(":")
    return _UrlParts(
        scheme=scheme.lower(),
        user=user if at else None,
        password=password if at and colon else None,
        host_port=host_port,
        prefix=url[:start],
        rest=url[end:],
    )
