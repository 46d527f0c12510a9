"""`/api/users`: create, read, replace and delete a user, a taken id, bad fields by name,
search and paging, CSV import errors by line, export as CSV with formulas neutralised, and
authentication."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.users.test_csv import HEADER


def test_users_api_crud(api: TestClient) -> None:
    created = api.post("/api/users", json={"name": "Alice", "email": "a@example.com"})
    assert created.status_code == 201
    user_id = created.json()["id"]
    assert api.get(f"/api/users/{user_id}").json()["email"] == "a@example.com"
    replaced = api.put(f"/api/users/{user_id}", json={"name": "Alice N.", "numbers": ["101"]})
    assert replaced.status_code == 200
    assert replaced.json() == {
        "id": user_id,
        "name": "Alice N.",
        "email": "",
        "numbers": ["101"],
        "cards": [],
        "bluetooth": [],
        "fingerprints": [],
        "warnings": [],
    }
    assert api.delete(f"/api/users/{user_id}").status_code == 204
    assert api.get(f"/api/users/{user_id}").status_code == 404
    assert api.put(f"/api/users/{user_id}", json={}).status_code == 404


def test_users_api_duplicate_id_is_409(api: TestClient) -> None:
    assert api.post("/api/users", json={"id": "u-1"}).status_code == 201
    reply = api.post("/api/users", json={"id": "u-1", "name": "again"})
    assert reply.status_code == 409
    assert reply.json()["error"]["field"] == "id"


def test_users_api_names_the_bad_field(api: TestClient) -> None:
    reply = api.post("/api/users", json={"email": "x@example.com, nope"})
    assert reply.status_code == 422
    assert reply.json()["error"]["field"] == "email"
    reply = api.put("/api/users/u-1", json={"id": "u-2"})
    assert reply.status_code == 422 and reply.json()["error"]["field"] == "id"
    reply = api.post("/api/users", content=b"{", headers={"content-type": "application/json"})
    assert reply.status_code == 400


def test_users_api_search_and_paging(api: TestClient) -> None:
    lines = [f"u-{i:02d},Resident {i},r{i}@example.com,{100 + i},CA{i:04d},," for i in range(25)]
    reply = api.post(
        "/api/users/import",
        content=(HEADER + "\n".join(lines)).encode(),
        headers={"content-type": "text/csv"},
    )
    assert reply.json() == {"imported": 25, "warnings": []}
    first = api.get("/api/users", params={"limit": 10}).json()
    assert [u["id"] for u in first["items"]] == [f"u-{i:02d}" for i in range(10)]
    assert first["total"] == 25
    second = api.get("/api/users", params={"limit": 10, "cursor": first["next"]}).json()
    assert second["items"][0]["id"] == "u-10"
    found = api.get("/api/users", params={"q": "ca0017"}).json()
    assert [u["id"] for u in found["items"]] == ["u-17"]
    assert api.get("/api/users", params={"q": "resident 2"}).json()["total"] == 6
    assert api.get("/api/users", params={"q": "100%"}).json()["total"] == 0


def test_users_api_import_error_lists_every_line(api: TestClient) -> None:
    text = HEADER + "u-1,A,bad,,,,\nu-2,B,b@example.com,,,,\nu-3,C,also-bad,,,,\n"
    reply = api.post(
        "/api/users/import", content=text.encode(), headers={"content-type": "text/csv"}
    )
    assert reply.status_code == 422
    errors = reply.json()["error"]["errors"]
    assert [(e["line"], e["column"]) for e in errors] == [(2, "email"), (4, "email")]
    assert api.get("/api/users").json()["total"] == 0


def test_users_api_export_is_csv(api: TestClient) -> None:
    api.post("/api/users", json={"id": "u-1", "name": "Alice", "cards": ["ab12cd34"]})
    reply = api.get("/api/users/export")
    assert reply.headers["content-type"].startswith("text/csv")
    assert reply.text.splitlines() == [HEADER.strip(), '"u-1","Alice","","","AB12CD34","",""']


def test_users_api_needs_authentication(anonymous: TestClient) -> None:
    assert anonymous.get("/api/users").status_code == 401
    assert anonymous.get("/api/users/export").status_code == 401


def test_users_export_of_the_api_and_the_users_tab_neutralises_formulas(api: TestClient) -> None:
    # The Users tab's "Export CSV" link is this same route.
    api.post("/api/users", json={"id": "u-1", "name": "=cmd|' /C calc'!A0", "numbers": ["+420"]})
    reply = api.get("/api/users/export")
    assert reply.text.splitlines()[1] == '"u-1","\'=cmd|\' /C calc\'!A0","","\'+420","","",""'
    imported = api.post(
        "/api/users/import", content=reply.text, headers={"Content-Type": "text/csv"}
    )
    assert imported.status_code == 200, imported.text
    assert api.get("/api/users/u-1").json()["numbers"] == ["+420"]
