"""The web side's armour: every response carries a Content-Security-Policy without inline
script, refuses framing, sniffing and cross-site referrers; the session cookie is HttpOnly,
SameSite=Strict and, over HTTPS, Secure; the OpenAPI document describes every route of the API
with its request and reply shapes, and its docs page loads nothing from elsewhere."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie

import pytest
from fastapi.testclient import TestClient

from doormail.app import Service
from doormail.web.app import create_app
from doormail.web.headers import SECURITY_HEADERS
from doormail.web.ui import SESSION_COOKIE
from tests.conftest import ADMIN_PASSWORD, basic_auth, log_in_with_the_form
from tests.web.test_security import routes_of


def assert_armoured(reply: object) -> None:
    headers = reply.headers  # type: ignore[attr-defined]
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, f"{name} missing on {reply}"
    policy = headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "unsafe-inline" not in policy.split("script-src", 1)[1].split(";")[0]
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/config", None),
        ("GET", "/api/users/nobody", None),  # 404
        ("POST", "/api/events", b"{"),  # 400
        ("POST", "/api/events", b"x" * (9 * 1024 * 1024)),  # 413 before the app runs
        ("DELETE", "/api/config", None),  # 405
        ("GET", "/healthz", None),
        ("GET", "/login", None),
        ("GET", "/static/doormail.css", None),
        ("GET", "/static/swagger-ui/swagger-ui.css", None),
        ("GET", "/openapi.json", None),
        ("GET", "/docs", None),
        ("GET", "/metrics", None),
    ],
)
def test_every_response_carries_the_security_headers(
    api: TestClient, method: str, path: str, body: bytes | None
) -> None:
    reply = api.request(method, path, content=body)
    assert_armoured(reply)


def test_refusals_of_strangers_carry_the_security_headers_too(anonymous: TestClient) -> None:
    assert_armoured(anonymous.get("/api/config"))
    assert_armoured(anonymous.get("/smtp", follow_redirects=False))


def test_an_unexpected_error_is_answered_with_the_headers_and_without_a_stack_trace(
    service: Service,
) -> None:
    app = create_app(service)

    @app.get("/api/broken")
    def broken() -> None:
        raise RuntimeError("deep inside")

    with TestClient(app, raise_server_exceptions=False) as client:
        reply = client.get("/api/broken")
    assert reply.status_code == 500
    assert reply.json()["error"]["code"] == "internal"
    assert "deep inside" not in reply.text
    assert_armoured(reply)


def test_a_wrong_method_names_every_method_of_the_path(api: TestClient) -> None:
    reply = api.post("/api/users/u-1")
    assert reply.status_code == 405
    assert reply.headers["allow"] == "DELETE, GET, PUT"


def _session_cookie(client: TestClient) -> str:
    reply = log_in_with_the_form(client)
    [cookie] = [c for c in reply.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)]
    return cookie


def _flags(cookie: str) -> set[str]:
    return {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}


def test_the_session_cookie_is_http_only_and_same_site_strict(anonymous: TestClient) -> None:
    cookie = _session_cookie(anonymous)
    assert "httponly" in _flags(cookie)
    parsed = SimpleCookie(cookie)
    assert parsed[SESSION_COOKIE]["samesite"].lower() == "strict"
    assert "secure" not in _flags(cookie)  # plain HTTP on the loopback: it must still work


def test_the_session_cookie_is_secure_under_https(service: Service) -> None:
    with TestClient(create_app(service), base_url="https://doormail.test") as client:
        cookie = _session_cookie(client)
    assert {"httponly", "secure", "samesite"} <= _flags(cookie)


# -- the OpenAPI document ------------------------------------------------------------------------


def test_the_document_and_the_docs_page_need_authentication(anonymous: TestClient) -> None:
    for path in ("/openapi.json", "/docs"):
        assert anonymous.get(path).status_code == 401
        auth = basic_auth("admin", ADMIN_PASSWORD)
        assert anonymous.get(path, headers=auth).status_code == 200


def test_the_docs_page_loads_nothing_from_elsewhere_and_runs_no_inline_script(
    api: TestClient,
) -> None:
    page = api.get("/docs").text
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources and all(source.startswith("/") for source in sources), sources
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page) is None
    for source in sources:
        assert api.get(source).status_code == 200, source


def test_every_api_route_is_in_the_document_with_its_request_and_reply_shapes(
    api: TestClient,
) -> None:
    document = api.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    served = {
        (method, path)
        for path, methods in routes_of(list(api.app.routes))  # type: ignore[attr-defined]
        for method in methods - {"HEAD"}
        if path.startswith("/api/") or path == "/metrics"
    }
    assert served == documented
    shapes = document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            answers = operation["responses"]
            success = [code for code in answers if code.startswith("2")]
            assert success, where
            for code, answer in answers.items():
                if code != "204":
                    assert answer.get("content"), f"{where} {code} has no shape"
            refusals = [answers[code] for code in answers if code.startswith("4")]
            for refusal in refusals:
                schema = refusal["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorReply"}, where
            if method in ("put", "patch") or (method == "post" and "retry" not in path):
                assert operation.get("requestBody", {}).get("content"), f"{where} has no body"
    assert "HTTPValidationError" not in shapes
    secrets = document["components"]["schemas"]["Configuration"]["properties"]["smtp"]
    assert "password" not in secrets["properties"]
    assert secrets["properties"]["password_set"]["type"] == "boolean"
