"""What an installer does in the browser, end to end against the Postfix SMTP lab: upload the
lab's CA, set the STARTTLS port and credentials and watch Apply & Test reach "sent"; send mail
for missed calls to a user added in the Users tab and find it in the Outbox tab and the lab's
maildir; retry a refused mail; import a CSV with a bad line; upload a bad certificate."""

from __future__ import annotations

import re
import socket
import time
import uuid
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from doormail.certificates.pem import self_signed
from tests.conftest import Lab, RunningService
from tests.ui.conftest import SCREENSHOTS

SENT_WITHIN_MS = 30_000
FINGERPRINT = re.compile(r"^([0-9A-F]{2}:){31}[0-9A-F]{2}$")


def unique_address(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex[:12]}@example.com"


def test_apply_and_test_with_the_lab_reaches_sent(
    page: Page, served: RunningService, lab: Lab, api_client: httpx.Client
) -> None:
    page.goto(served.url + "/certificates")
    ca1 = page.locator("section#ca1")
    ca1.get_by_label("PEM file").set_input_files(lab.ca)
    ca1.get_by_role("button", name="Upload to CA1").click()
    expect(page.get_by_role("status")).to_contain_text("CA1 stored.")
    expect(page.locator("section#ca1 [data-subject]")).to_contain_text("smtp-lab")
    expect(page.locator("section#ca1 [data-fingerprint]")).to_have_text(FINGERPRINT)

    page.goto(served.url + "/smtp")
    page.get_by_label("SMTP Service Enabled").check()
    page.get_by_label("Server Address").fill(lab.host)
    page.get_by_label("Server Port").fill(str(lab.starttls))
    page.get_by_label("Security").select_option("starttls")
    page.get_by_label("CA Certificate").select_option("ca1")
    page.get_by_label("Username").fill(lab.user)
    page.get_by_label("Password", exact=True).fill(lab.password)
    page.get_by_label("From Address").fill("door@example.org")
    to = unique_address("apply-test")
    page.get_by_label("Test e-mail address").fill(to)
    page.get_by_role("button", name="Apply & Test").click()

    state = page.locator("[data-test-state]")
    expect(state).to_have_text("sent", timeout=SENT_WITHIN_MS)
    log = page.locator("[data-test-log] li")
    assert log.count() >= 4, log.all_inner_texts()
    assert any("250" in line for line in log.all_inner_texts()), log.all_inner_texts()
    expect(page.locator('[data-field="smtp.password"] [data-secret-state]')).to_have_text("set")
    expect(page.get_by_label("Password", exact=True)).to_have_value("")
    saved = api_client.get("/api/config").json()["smtp"]
    assert (saved["port"], saved["ca"], saved["password_set"]) == (lab.starttls, "ca1", True)
    message = lab.mail_to(to, timeout=20)
    assert "Authenticated sender" in str(message.get_all("Received"))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#test-status").scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "smtp-apply-and-test-desktop.png", full_page=True)


def test_a_wrong_password_ends_the_test_with_a_hint(
    page: Page, served: RunningService, lab: Lab, api_client: httpx.Client
) -> None:
    pem = lab.ca.read_text()
    assert api_client.put("/api/certificates/ca1", content=pem).status_code == 200
    page.goto(served.url + "/smtp")
    page.get_by_label("SMTP Service Enabled").check()
    page.get_by_label("Server Address").fill(lab.host)
    page.get_by_label("Server Port").fill(str(lab.starttls))
    page.get_by_label("CA Certificate").select_option("ca1")
    page.get_by_label("Username").fill(lab.user)
    page.get_by_label("Password", exact=True).fill("not-the-password")
    page.get_by_label("From Address").fill("door@example.org")
    page.get_by_label("Test e-mail address").fill(unique_address("wrong-password"))
    page.get_by_role("button", name="Apply & Test").click()
    expect(page.locator("[data-test-state]")).to_have_text("failed", timeout=SENT_WITHIN_MS)
    expect(page.locator("[data-test-log]")).to_contain_text("535")
    expect(page.locator("[data-test-log] li.hint")).not_to_have_count(0)


def test_apply_and_test_shows_a_settings_error_at_its_field(page: Page) -> None:
    page.get_by_label("Server Port").fill("0")
    page.get_by_label("Test e-mail address").fill(unique_address("never-sent"))
    page.get_by_role("button", name="Apply & Test").click()
    expect(page.locator('[data-error-for="smtp.port"]')).to_be_visible()
    expect(page.locator("[data-test-state]")).to_have_text("not saved")


def test_apply_and_test_while_three_runs_are_going_says_so_in_its_log(
    page: Page, served: RunningService, api_client: httpx.Client
) -> None:
    silent = socket.socket()  # takes connections, never greets: runs against it wait
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    smtp = {"server": "127.0.0.1", "port": silent.getsockname()[1], "from": "door@example.org"}
    runs = []
    try:
        for _ in range(3):
            started = api_client.post("/api/smtp/test", json={"to": "a@example.com", "smtp": smtp})
            assert started.status_code == 202
            runs.append(started.json()["id"])
        page.goto(served.url + "/smtp")
        page.get_by_label("Server Address").fill("127.0.0.1")
        page.get_by_label("From Address").fill("door@example.org")
        page.get_by_label("Test e-mail address").fill(unique_address("busy"))
        page.get_by_role("button", name="Apply & Test").click()
        expect(page.locator("[data-test-state]")).to_have_text("busy")
        expect(page.locator("[data-test-log]")).to_contain_text("3 Apply & Test runs")
        expect(page.get_by_role("button", name="Apply & Test")).to_be_enabled()
    finally:
        silent.close()
        for run_id in runs:  # the other tests here need the places again
            deadline = time.monotonic() + 30
            while api_client.get(f"/api/smtp/test/{run_id}").json()["state"] == "running":
                assert time.monotonic() < deadline
                time.sleep(0.1)


def test_a_missed_call_mail_reaches_the_outbox_and_the_maildir(
    page: Page, served: RunningService, lab: Lab, api_client: httpx.Client
) -> None:
    smtp = {
        "enabled": True,
        "server": lab.host,
        "port": lab.plain,
        "security": "auto",
        "username": "",
        "password": "",  # no login: the password of an earlier test is cleared, not carried over
        "from": "door@example.org",
    }
    assert api_client.patch("/api/config", json={"smtp": smtp}).status_code == 200

    page.goto(served.url + "/email-on-call")
    page.get_by_label("Send E-Mail to User at").select_option(label="Missed Outgoing Call")
    page.get_by_role("button", name="Apply", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Settings saved.")
    assert api_client.get("/api/config").json()["email_on_call"]["send"] == "missed"

    address = unique_address("resident")
    number = str(100 + uuid.uuid4().int % 800)
    page.goto(served.url + "/users")
    page.get_by_role("link", name="Add user").click()
    page.get_by_label("Name").fill("Alice Novak")
    page.get_by_label("E-Mail").fill(address)
    page.get_by_label("Numbers").fill(number)
    page.get_by_role("button", name="Add user").click()
    expect(page.get_by_role("status")).to_contain_text("added")
    expect(page.locator("table.users")).to_contain_text(address)

    event = {
        "type": "call.ended",
        "call_id": uuid.uuid4().hex,
        "direction": "outgoing",
        "called": number,
        "answered": False,
    }
    reply = api_client.post("/api/events", json=event)
    assert reply.status_code == 202, reply.text
    assert [mail["to"] for mail in reply.json()["emails"]] == [address]

    row = page.locator(f'tr[data-to="{address}"]')
    deadline = time.monotonic() + 20
    page.goto(served.url + "/outbox")
    while row.get_attribute("data-status") != "sent" and time.monotonic() < deadline:
        time.sleep(0.3)
        page.reload()
    expect(row).to_have_attribute("data-status", "sent")
    page.get_by_label("State").select_option("sent")
    page.get_by_role("button", name="Show").click()
    expect(row).to_be_visible()

    row.get_by_role("link").click()
    expect(page.locator("[data-item-status]")).to_have_text("sent")
    expect(page.locator("dl.headers")).to_contain_text(address)
    source = page.locator("[data-source]").text_content() or ""
    assert "Message-ID:" in source and f"To: <{address}>" in source

    delivered = lab.mail_to(address, timeout=20)
    assert delivered["Message-ID"] in source


def test_a_refused_mail_is_failed_and_can_be_retried(
    page: Page, served: RunningService, lab: Lab, api_client: httpx.Client
) -> None:
    # The lab's submission port refuses mail from unauthenticated senders with 554: permanent.
    pem = lab.ca.read_text()
    assert api_client.put("/api/certificates/ca1", content=pem).status_code == 200
    smtp = {
        "enabled": True,
        "server": lab.host,
        "port": lab.starttls,
        "security": "starttls",
        "ca": "ca1",
        "username": "",
        "password": "",  # no login: the password of an earlier test is cleared, not carried over
        "from": "door@example.org",
    }
    assert api_client.patch("/api/config", json={"smtp": smtp}).status_code == 200
    to = unique_address("refused")
    event_settings = {"to": to, "device_rebooted": {"enabled": True}}
    assert api_client.patch("/api/config", json={"email_on_event": event_settings}).is_success
    reply = api_client.post("/api/events", json={"type": "device.rebooted"})
    assert reply.status_code == 202, reply.text

    page.goto(served.url + "/outbox?status=failed")
    row = page.locator(f'tr[data-to="{to}"]')
    deadline = time.monotonic() + 20
    while row.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.3)
        page.reload()
    expect(row).to_have_attribute("data-status", "failed")
    expect(row).to_contain_text("554")
    row.get_by_role("link").click()
    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("status")).to_contain_text("Queued again")
    # The page follows the mail while it is queued and sent again.
    expect(page.locator("[data-item-status]")).to_have_text("failed", timeout=20_000)


def test_a_csv_with_one_bad_line_is_refused_with_its_line_number(
    page: Page, served: RunningService, tmp_path: Path, api_client: httpx.Client
) -> None:
    before = api_client.get("/api/users").json()["total"]
    tag = uuid.uuid4().hex[:8]
    csv = tmp_path / "users.csv"
    csv.write_text(
        "id,name,email,numbers,cards,bluetooth,fingerprints\n"
        f"csv-{tag}-1,Bob,bob-{tag}@example.com,201,,,\n"
        f"csv-{tag}-2,Carol,carol-at-example.com,202,,,\n"
        f"csv-{tag}-3,Dan,dan-{tag}@example.com,203;204,00AB12CD34,,\n",
        encoding="utf-8",
    )
    page.goto(served.url + "/users")
    page.get_by_label("CSV file").set_input_files(csv)
    page.get_by_role("button", name="Import").click()
    problems = page.locator("[data-import-error]")
    expect(problems).to_contain_text("nothing was imported")
    expect(problems.locator('li[data-line="3"]')).to_contain_text("line 3")
    expect(problems.locator("li")).to_have_count(1)
    assert api_client.get("/api/users").json()["total"] == before

    csv.write_text(
        csv.read_text().replace("carol-at-example.com", f"carol-{tag}@example.com"),
        encoding="utf-8",
    )
    page.get_by_label("CSV file").set_input_files(csv)
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_role("status")).to_contain_text("3 user(s) imported")
    page.get_by_label("Search").fill(tag)
    page.get_by_role("button", name="Search").click()
    expect(page.locator("table.users tbody tr")).to_have_count(3)

    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    exported = Path(download.value.path()).read_text(encoding="utf-8")
    assert exported.splitlines()[0] == "id,name,email,numbers,cards,bluetooth,fingerprints"
    assert f'"csv-{tag}-3","Dan","dan-{tag}@example.com","203;204","00AB12CD34"' in exported


def test_a_user_with_a_bad_email_is_shown_at_the_field_and_can_be_deleted(
    page: Page, served: RunningService
) -> None:
    page.goto(served.url + "/users/new")
    user_id = f"edit-{uuid.uuid4().hex[:8]}"
    page.get_by_label("ID", exact=True).fill(user_id)
    page.get_by_label("E-Mail").fill("not an address")
    page.get_by_role("button", name="Add user").click()
    expect(page.locator('[data-error-for="email"]')).to_contain_text("not an e-mail address")
    page.get_by_label("E-Mail").fill(f"{user_id}@example.com")
    page.get_by_role("button", name="Add user").click()
    expect(page.get_by_role("status")).to_contain_text(f"User {user_id} added.")

    page.get_by_role("link", name=user_id, exact=True).click()
    page.get_by_label("Name").fill("Renamed")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(f'tr[data-user="{user_id}"]')).to_contain_text("Renamed")

    page.get_by_role("link", name=user_id, exact=True).click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete user").click()
    expect(page.get_by_role("status")).to_contain_text(f"User Renamed ({user_id}) deleted.")
    expect(page.locator(f'tr[data-user="{user_id}"]')).to_have_count(0)


def test_a_user_certificate_without_its_key_is_refused_at_its_slot(
    page: Page, served: RunningService
) -> None:
    certificate, key = self_signed("ui-test-client")
    page.goto(served.url + "/certificates")
    user1 = page.locator("section#user1")
    user1.get_by_label("or paste the PEM text").fill(certificate)
    user1.get_by_role("button", name="Upload to User1").click()
    error = page.locator('[data-error-for="user1"]')
    expect(error).to_be_visible()
    expect(error).to_contain_text("key")
    expect(page.locator("section#user1 [data-slot-state]")).to_have_attribute(
        "data-slot-state", "empty"
    )
    user1 = page.locator("section#user1")
    user1.get_by_label("or paste the PEM text").fill(certificate + key)
    user1.get_by_role("button", name="Upload to User1").click()
    expect(page.locator("section#user1 [data-subject]")).to_contain_text("ui-test-client")
    expect(page.locator("section#user1 [data-expiry]")).not_to_be_empty()
    assert "PRIVATE KEY" not in page.content()
