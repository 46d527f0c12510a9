"""Authentication: HTTP Basic for admin and bearer tokens are accepted; repeated failures are
slowed down (the walk over every route is in test_tokens)."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

from doormail.accounts import Caller
from doormail.app import Service
from tests.conftest import basic_auth


def test_healthz_needs_no_authentication(anonymous: TestClient) -> None:
    reply = anonymous.get("/healthz")
    assert reply.status_code == 200
    assert reply.json() == {"status": "ok"}


def routes_of(routes: list[Any]) -> list[tuple[str, set[str]]]:
    """Every (path, methods) of an application, including those of its included routers."""
    found = []
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            prefix = getattr(getattr(route, "include_context", None), "prefix", "")
            found += [(prefix + path, methods) for path, methods in routes_of(included.routes)]
        elif hasattr(route, "path"):
            found.append((route.path, set(getattr(route, "methods", None) or {"GET"})))
    return found


def test_wrong_password_is_refused(anonymous: TestClient) -> None:
    reply = anonymous.get("/api/config", headers=basic_auth("admin", "wrong"))
    assert reply.status_code == 401
    assert reply.json()["error"]["code"] == "unauthorized"


def test_a_bearer_token_is_accepted(anonymous: TestClient, service: Service) -> None:
    token = service.accounts.create_token("installer", scope="admin")
    assert (
        anonymous.get("/api/config", headers={"Authorization": f"Bearer {token}"}).status_code
        == 200
    )
    bad = anonymous.get("/api/config", headers={"Authorization": "Bearer dm_nope"})
    assert bad.status_code == 401


def test_a_new_token_of_the_same_name_replaces_the_old(service: Service) -> None:
    first = service.accounts.create_token("door-1")
    second = service.accounts.create_token("door-1")
    assert service.accounts.check_token(first) is None
    assert service.accounts.check_token(second) == Caller("door-1", "events")


def test_the_password_is_stored_only_as_a_slow_salted_hash(service: Service) -> None:
    from sqlalchemy import select

    from doormail.store import tables

    with service.engine.connect() as connection:
        stored = connection.execute(select(tables.accounts.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$")
    assert "test-admin-password" not in stored


def test_failures_over_http_are_answered_later_and_later(anonymous: TestClient) -> None:
    started = time.monotonic()
    for _ in range(5):
        assert anonymous.get("/api/config", headers=basic_auth("admin", "wrong")).status_code == 401
    assert time.monotonic() - started >= 0.25 + 0.5
