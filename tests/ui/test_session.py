"""The web UI's login, session cookie and CSRF protection, through the application itself (no
browser needed): nothing but the login page without a session, forms and API changes refused
without the session's token, sessions that survive a restart."""

from __future__ import annotations

import re
import stat
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from doormail.app import Paths, Service, build_service
from doormail.web.app import create_app
from doormail.web.ui import SESSION_COOKIE
from tests.conftest import ADMIN_PASSWORD

UI_PAGES = (
    "/",
    "/smtp",
    "/email-on-call",
    "/email-on-access",
    "/email-on-event",
    "/camera",
    "/certificates",
    "/users",
    "/users/new",
    "/outbox",
    "/device",
)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def log_in(client: TestClient, password: str = ADMIN_PASSWORD, next: str = "/smtp") -> str:
    token = csrf_of(client.get("/login").text)
    reply = client.post(
        "/login",
        data={"csrf_token": token, "username": "admin", "password": password, "next": next},
        follow_redirects=False,
    )
    return str(reply.headers.get("location", reply.status_code))


@pytest.fixture
def browser(service: Service) -> Iterator[TestClient]:
    """A cookie-keeping client without HTTP Basic, as a browser is."""
    with TestClient(create_app(service)) as client:
        yield client


@pytest.mark.parametrize("path", UI_PAGES)
def test_every_page_but_the_login_page_leads_to_login(browser: TestClient, path: str) -> None:
    reply = browser.get(path, follow_redirects=False)
    assert reply.status_code == 303
    assert reply.headers["location"].startswith("/login?next=")


def test_the_login_page_needs_no_session(browser: TestClient) -> None:
    reply = browser.get("/login")
    assert reply.status_code == 200
    assert 'type="password"' in reply.text


def test_logging_in_with_the_admin_password_opens_the_tabs(browser: TestClient) -> None:
    assert log_in(browser) == "/smtp"
    reply = browser.get("/smtp")
    assert reply.status_code == 200
    assert "SMTP Service Enabled" in reply.text


def test_a_wrong_password_is_refused(browser: TestClient) -> None:
    token = csrf_of(browser.get("/login").text)
    reply = browser.post(
        "/login", data={"csrf_token": token, "username": "admin", "password": "wrong"}
    )
    assert reply.status_code == 401
    assert "Wrong user name or password" in reply.text
    assert browser.get("/smtp", follow_redirects=False).status_code == 303


def test_a_login_form_without_its_token_is_refused(browser: TestClient) -> None:
    browser.get("/login")
    reply = browser.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD})
    assert reply.status_code == 401
    assert browser.get("/smtp", follow_redirects=False).status_code == 303


def test_after_login_the_page_goes_back_only_to_this_site(browser: TestClient) -> None:
    assert log_in(browser, next="//elsewhere.example/steal") == "/"


def test_logging_out_ends_the_session(browser: TestClient) -> None:
    log_in(browser)
    token = csrf_of(browser.get("/smtp").text)
    reply = browser.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert reply.headers["location"] == "/login"
    assert browser.get("/smtp", follow_redirects=False).status_code == 303
    assert browser.get("/api/config").status_code == 401


def test_a_settings_form_without_the_token_changes_nothing(
    browser: TestClient, service: Service
) -> None:
    log_in(browser)
    reply = browser.post("/device", data={"device.name": "Hijacked"})
    assert reply.status_code == 403
    assert "Form expired" in reply.text
    assert service.settings.load().device.name == "doormail"


def test_a_settings_form_with_the_token_is_saved(browser: TestClient, service: Service) -> None:
    log_in(browser)
    form = browser.get("/device").text
    reply = browser.post(
        "/device",
        data={
            "csrf_token": csrf_of(form),
            "device.name": "Front door",
            "device.timezone": "Europe/Prague",
            "device.datetime_format": "%d.%m.%Y %H:%M",
            "limits.per_recipient_per_hour": "0",
            "limits.access_denied_burst": "0",
            "sources.mqtt.url": "mqtt://127.0.0.1:1883",
            "sources.mqtt.topic": "doormail/+/events",
        },
    )
    assert reply.status_code == 200
    assert "Settings saved." in reply.text
    assert service.settings.load().device.name == "Front door"
    assert service.settings.load().device.timezone == "Europe/Prague"


def test_the_api_accepts_the_session_for_reading(browser: TestClient) -> None:
    log_in(browser)
    assert browser.get("/api/config").status_code == 200


def test_api_changes_with_the_session_need_the_csrf_header(
    browser: TestClient, service: Service
) -> None:
    log_in(browser)
    token = csrf_of(browser.get("/smtp").text)
    refused = browser.patch("/api/config", json={"device": {"name": "Forged"}})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert service.settings.load().device.name == "doormail"
    wrong = browser.patch(
        "/api/config", json={"device": {"name": "Forged"}}, headers={"X-CSRF-Token": "guess"}
    )
    assert wrong.status_code == 403
    accepted = browser.patch(
        "/api/config", json={"device": {"name": "Lobby"}}, headers={"X-CSRF-Token": token}
    )
    assert accepted.status_code == 200
    assert service.settings.load().device.name == "Lobby"


def test_basic_authentication_needs_no_csrf_header(api: TestClient) -> None:
    assert api.patch("/api/config", json={"device": {"name": "Gate"}}).status_code == 200


def test_a_session_survives_a_restart(service: Service) -> None:
    with TestClient(create_app(service)) as first:
        log_in(first)
        cookie = first.cookies[SESSION_COOKIE]
    restarted = build_service(Paths.resolve(str(service.paths.data_dir)))
    with TestClient(create_app(restarted), cookies={SESSION_COOKIE: cookie}) as second:
        assert second.get("/smtp", follow_redirects=False).status_code == 200


def test_a_forged_session_cookie_is_worth_nothing(service: Service) -> None:
    forged = "eyJ1c2VyIjogImFkbWluIn0=.forged.signature"  # {"user": "admin"} unsigned
    with TestClient(create_app(service), cookies={SESSION_COOKIE: forged}) as client:
        assert client.get("/smtp", follow_redirects=False).status_code == 303
        assert client.get("/api/config").status_code == 401


def test_the_session_key_is_readable_by_its_owner_only(service: Service) -> None:
    create_app(service)
    mode = (service.paths.data_dir / "session.key").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_values_are_escaped_in_the_pages(browser: TestClient, service: Service) -> None:
    service.settings.save(
        service.settings.load().model_copy(
            update={
                "email_on_call": service.settings.load().email_on_call.model_copy(
                    update={"default_to": "", "subject": '<script>alert("x")</script>'}
                )
            }
        )
    )
    log_in(browser)
    html = browser.get("/email-on-call").text
    assert '<script>alert("x")</script>' not in html
    assert "&lt;script&gt;" in html


def test_pages_load_nothing_from_elsewhere(browser: TestClient) -> None:
    log_in(browser)
    reply = browser.get("/smtp")
    assert "default-src 'self'" in reply.headers["content-security-policy"]
    assert not re.search(r'(src|href)="(https?:)?//', reply.text)
    assert browser.get("/static/doormail.css").status_code == 200
    assert browser.get("/static/doormail.js").status_code == 200


def test_a_session_cookie_from_before_logout_is_refused(service: Service) -> None:
    with TestClient(create_app(service)) as browser:
        log_in(browser)
        token = csrf_of(browser.get("/smtp").text)
        captured = browser.cookies[SESSION_COOKIE]
        browser.post("/logout", data={"csrf_token": token})
    with TestClient(create_app(service), cookies={SESSION_COOKIE: captured}) as replayed:
        assert replayed.get("/api/config").status_code == 401
        forged = replayed.patch(
            "/api/config", json={"device": {"name": "Forged"}}, headers={"X-CSRF-Token": token}
        )
        assert forged.status_code == 401
        assert forged.json()["error"]["code"] == "unauthorized"
        assert replayed.get("/smtp", follow_redirects=False).status_code == 303
    assert service.settings.load().device.name == "doormail"


def test_logging_out_ends_every_session_of_the_account(service: Service) -> None:
    with TestClient(create_app(service)) as phone, TestClient(create_app(service)) as laptop:
        log_in(phone)
        log_in(laptop)
        phone.post("/logout", data={"csrf_token": csrf_of(phone.get("/smtp").text)})
        assert laptop.get("/api/config").status_code == 401
        assert laptop.get("/smtp", follow_redirects=False).status_code == 303
        assert log_in(laptop) == "/smtp"
        assert laptop.get("/api/config").status_code == 200


def test_a_password_change_ends_every_session(service: Service) -> None:
    with TestClient(create_app(service)) as browser:
        log_in(browser)
        token = csrf_of(browser.get("/smtp").text)
        # Another process (`doormail admin password`) changes the password in the database.
        build_service(Paths.resolve(str(service.paths.data_dir))).accounts.set_password(
            "admin", "a-new-password"
        )
        assert browser.get("/api/config").status_code == 401
        changed = browser.patch(
            "/api/config", json={"device": {"name": "Forged"}}, headers={"X-CSRF-Token": token}
        )
        assert changed.status_code == 401
        assert browser.get("/smtp", follow_redirects=False).status_code == 303
        assert log_in(browser) != "/smtp"
        assert log_in(browser, password="a-new-password") == "/smtp"
        assert browser.get("/api/config").status_code == 200
