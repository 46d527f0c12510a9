"""API tokens and their scopes, and the walk over every route of the application: nothing but
the health check, the login page and static files answers a stranger; a door station's `events`
token may post events and send e-mail and nothing else; an `admin` token may do everything; the
admin lists the tokens (never the tokens themselves) and revokes them; each token's last use is
kept."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy import event, select, text

from doormail.accounts import LAST_USE_RESOLUTION, Caller, TokenError
from doormail.app import Service
from doormail.store import open_engine, tables, upgrade
from doormail.store.engine import MIGRATIONS
from tests.web.test_security import routes_of

# Open to anyone (besides the static files): the health check and the login page.
OPEN_PATHS = ("/healthz", "/login")
# The routes an `events` token may call (SPEC section 1), as (method, path).
EVENTS_ROUTES = {
    ("POST", "/api/events"),
    ("POST", "/api/actions/send-email"),
    ("GET", "/api/email/send"),
    ("POST", "/api/email/send"),
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_new_token_is_an_events_token_unless_admin_is_asked_for(service: Service) -> None:
    door = service.accounts.create_token("door-1")
    integration = service.accounts.create_token("ha", scope="admin")
    assert service.accounts.check_token(door) == Caller("door-1", "events")
    assert service.accounts.check_token(integration) == Caller("ha", "admin")


def test_an_events_token_cannot_read_the_configuration(
    anonymous: TestClient, service: Service
) -> None:
    token = service.accounts.create_token("door-1")
    reply = anonymous.get("/api/config", headers=bearer(token))
    assert reply.status_code == 403
    error = reply.json()["error"]
    assert error["code"] == "forbidden"
    assert "events" in error["message"]
    assert "password" not in reply.text


def test_an_events_token_cannot_run_apply_and_test_against_a_server_it_names(
    anonymous: TestClient, service: Service
) -> None:
    token = service.accounts.create_token("door-1")
    smtp = {"server": "127.0.0.1", "port": 2599, "security": "none", "from": "a@example.com"}
    reply = anonymous.post(
        "/api/smtp/test", json={"to": "a@example.com", "smtp": smtp}, headers=bearer(token)
    )
    assert reply.status_code == 403
    assert reply.json()["error"]["code"] == "forbidden"


def test_an_events_token_posts_events_and_sends_email(
    anonymous: TestClient, service: Service
) -> None:
    headers = bearer(service.accounts.create_token("door-1"))
    event = anonymous.post("/api/events", json={"type": "device.rebooted"}, headers=headers)
    assert event.status_code == 202, event.text
    action = anonymous.post(
        "/api/actions/send-email", json={"to": "a@example.com"}, headers=headers
    )
    assert action.status_code not in (401, 403), action.text
    params = {"to": "a@example.com", "subject": "hello"}
    by_get = anonymous.get("/api/email/send", params=params, headers=headers)
    by_post = anonymous.post("/api/email/send", json=params, headers=headers)
    for reply in (by_get, by_post):
        assert reply.status_code == 200, reply.text
        assert "success" in reply.json()


def _walk(client: TestClient) -> list[tuple[str, str, str]]:
    """Every (method, path, url) of the application but the open ones: /healthz, the login
    page and the static files (a path parameter filled with a made-up value)."""
    found = []
    for path, methods in routes_of(list(client.app.routes)):  # type: ignore[attr-defined]
        if path in OPEN_PATHS or path.startswith("/static"):
            continue
        url = path.replace("{", "x").replace("}", "")
        found += [(method, path, url) for method in sorted(methods - {"HEAD"})]
    return found


def _is_api(path: str) -> bool:
    return path.startswith("/api/") or path in ("/metrics", "/openapi.json", "/docs")


def test_every_route_is_guarded_from_strangers_and_from_door_stations(
    anonymous: TestClient, service: Service
) -> None:
    """Without credentials: 401 from the API (and its document and docs page), a redirect to
    the login page from the web UI. With an `events` token: 403 everywhere but the three routes
    a door station uses."""
    headers = bearer(service.accounts.create_token("door-1"))
    allowed = set()
    refused = 0
    for method, path, url in _walk(anonymous):
        stranger = anonymous.request(method, url, follow_redirects=False)
        door = anonymous.request(method, url, headers=headers, follow_redirects=False)
        if _is_api(path):
            assert stranger.status_code == 401, f"{method} {path} answered {stranger.status_code}"
            assert stranger.headers["www-authenticate"].startswith("Basic")
            assert stranger.json()["error"]["code"] == "unauthorized"
        else:  # the web UI knows only its session cookie
            assert stranger.status_code == 303, f"{method} {path}"
            assert stranger.headers["location"].startswith("/login?next=")
        if (method, path) in EVENTS_ROUTES:
            assert door.status_code not in (401, 403), f"{method} {path}"
            allowed.add((method, path))
        elif _is_api(path):
            assert door.status_code == 403, f"{method} {path} answered {door.status_code}"
            assert door.json()["error"]["code"] == "forbidden"
            refused += 1
        else:
            assert door.status_code == 303, f"{method} {path}"
    assert allowed == EVENTS_ROUTES
    assert refused > 25  # /api/config, /api/tokens, /api/smtp/test, /metrics, /docs, ...


def test_the_open_routes_are_the_health_check_the_login_page_and_static_files(
    anonymous: TestClient,
) -> None:
    assert anonymous.get("/healthz").json() == {"status": "ok"}
    assert anonymous.get("/login").status_code == 200
    assert anonymous.get("/static/doormail.css").status_code == 200
    assert anonymous.get("/static/swagger-ui/swagger-ui-bundle.js").status_code == 200


def test_an_admin_token_may_do_what_the_admin_may(anonymous: TestClient, service: Service) -> None:
    headers = bearer(service.accounts.create_token("installer", scope="admin"))
    assert anonymous.get("/api/config", headers=headers).status_code == 200
    assert anonymous.get("/api/tokens", headers=headers).status_code == 200
    patch = {"device": {"name": "Gate 2"}}
    assert anonymous.patch("/api/config", json=patch, headers=headers).status_code == 200


def test_the_token_list_shows_name_scope_and_times_but_never_the_token(
    api: TestClient, service: Service
) -> None:
    before = time.time()
    door = service.accounts.create_token("door-1")
    service.accounts.create_token("installer", scope="admin")
    reply = api.get("/api/tokens")
    assert reply.status_code == 200
    items = reply.json()["items"]
    assert [(item["name"], item["scope"]) for item in items] == [
        ("door-1", "events"),
        ("installer", "admin"),
    ]
    for item in items:
        assert set(item) == {"name", "scope", "created_at", "last_used_at"}
        assert item["created_at"] >= before - 1
        assert item["last_used_at"] is None
    assert door not in reply.text
    with service.engine.connect() as connection:
        hashes = connection.execute(select(tables.tokens.c.token_hash)).scalars().all()
    assert not any(digest in reply.text for digest in hashes)


def test_revoking_a_token_ends_it_at_once(
    api: TestClient, anonymous: TestClient, service: Service
) -> None:
    token = service.accounts.create_token("door-1")
    assert anonymous.post("/api/events", json={"type": "device.rebooted"}, headers=bearer(token))
    reply = api.delete("/api/tokens/door-1")
    assert reply.status_code == 204
    assert reply.content == b""
    gone = anonymous.post("/api/events", json={"type": "device.rebooted"}, headers=bearer(token))
    assert gone.status_code == 401
    assert api.get("/api/tokens").json()["items"] == []


def test_revoking_an_unknown_token_is_404_naming_it(api: TestClient) -> None:
    reply = api.delete("/api/tokens/door-9")
    assert reply.status_code == 404
    error = reply.json()["error"]
    assert error["code"] == "not_found"
    assert error["field"] == "name"
    assert "door-9" in error["message"]


def test_a_tokens_last_use_is_written_at_most_once_a_minute(
    anonymous: TestClient, service: Service
) -> None:
    headers = bearer(service.accounts.create_token("door-1"))
    writes: list[str] = []

    def count_writes(*args: object) -> None:
        statement = str(args[2])
        if statement.startswith("UPDATE tokens"):
            writes.append(statement)

    event.listen(service.engine, "before_cursor_execute", count_writes)
    try:
        for _ in range(5):
            reply = anonymous.post(
                "/api/events", json={"type": "tamper.activated"}, headers=headers
            )
            assert reply.status_code == 202
    finally:
        event.remove(service.engine, "before_cursor_execute", count_writes)
    assert len(writes) == 1
    [first] = service.accounts.tokens()
    assert first.last_used_at is not None
    assert time.time() - first.last_used_at < 10
    # A minute later the next use is written again.
    with service.engine.begin() as connection:
        earlier = first.last_used_at - LAST_USE_RESOLUTION - 1
        connection.execute(text("UPDATE tokens SET last_used_at = :t"), {"t": earlier})
    fresh = type(service.accounts)(service.engine)  # another process: no memory of the first
    assert fresh.check_token(headers["Authorization"].removeprefix("Bearer ")) is not None
    [later] = fresh.tokens()
    assert later.last_used_at is not None and later.last_used_at > first.last_used_at


@pytest.mark.parametrize(
    ("name", "scope", "field"),
    [
        ("", "events", "name"),
        ("front door", "events", "name"),
        ("a/b", "events", "name"),
        ("x" * 129, "events", "name"),
        ("door-1", "root", "scope"),
    ],
)
def test_a_token_name_or_scope_that_cannot_be_used_is_refused_naming_it(
    service: Service, name: str, scope: str, field: str
) -> None:
    with pytest.raises(TokenError) as caught:
        service.accounts.create_token(name, scope=scope)
    assert caught.value.field == field
    assert service.accounts.tokens() == []


def test_tokens_made_before_scopes_keep_their_rights_and_the_cli_token_is_for_events(
    tmp_path: Path,
) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
    with engine.begin() as connection:
        for name in ("home-assistant", "cli"):
            connection.execute(
                text("INSERT INTO tokens (name, token_hash, created_at) VALUES (:n, :h, 1.0)"),
                {"n": name, "h": f"hash-{name}"},
            )
    upgrade(engine)
    with engine.connect() as connection:
        scopes = dict(connection.execute(select(tables.tokens.c.name, tables.tokens.c.scope)).all())
    assert scopes == {"home-assistant": "admin", "cli": "events"}
