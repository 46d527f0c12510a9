"""DKIM on the SMTP tab: the record to publish appears once a key is made with the tab's
button, the DNS check says what DNS holds, and the private key never reaches the page."""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from doormail.app import Service
from doormail.settings import apply_patch
from doormail.web.app import create_app
from tests.conftest import log_in_with_the_form
from tests.web.test_api_dkim import DKIM, Zone


@pytest.fixture
def zone() -> Zone:
    return Zone()


@pytest.fixture
def browser(service: Service, zone: Zone) -> Iterator[TestClient]:
    with TestClient(create_app(dataclasses.replace(service, dkim_lookup=zone.txt))) as client:
        log_in_with_the_form(client)
        yield client


def csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def test_the_smtp_tab_asks_for_domain_and_selector_before_a_key(browser: TestClient) -> None:
    page = browser.get("/smtp").text
    assert "Set the DKIM Domain (Beyond the manual) and apply" in page
    assert 'action="/smtp/dkim/key"' not in page


def test_a_key_made_on_the_smtp_tab_shows_its_record_and_the_check_reports(
    browser: TestClient, service: Service, zone: Zone
) -> None:
    service.settings.save(apply_patch(service.settings.load(), {"smtp": {"dkim": DKIM}}))
    token = csrf(browser.get("/smtp").text)
    made = browser.post("/smtp/dkim/key", data={"csrf_token": token, "algorithm": "ed25519"})
    assert made.status_code == 200
    page = html.unescape(made.text)
    assert "New DKIM key made: publish the TXT record door2026._domainkey.example.org" in page
    [txt] = re.findall(r"<code class=\"wrap\" data-dkim-txt>([^<]+)</code>", page)
    assert txt.startswith("v=DKIM1; k=ed25519; p=")
    assert service.settings.load().smtp.dkim.private_key.split("\n")[1] not in page

    checked = browser.post("/smtp/dkim/check", data={"csrf_token": csrf(page)})
    assert "door2026._domainkey.example.org: not published yet." in html.unescape(checked.text)
    zone.records["door2026._domainkey.example.org"] = txt
    checked = browser.post("/smtp/dkim/check", data={"csrf_token": csrf(checked.text)})
    assert "published and matches the key" in html.unescape(checked.text)


def test_a_key_form_without_the_csrf_token_is_refused(browser: TestClient) -> None:
    reply = browser.post("/smtp/dkim/key", data={"algorithm": "rsa"}, follow_redirects=False)
    assert reply.status_code in (403, 400)
