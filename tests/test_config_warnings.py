"""Settings that are valid but will not make the mail an installer expects (SPEC section 2),
each worded with the labels the UI shows, and none for settings that will mail."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from doormail.config_warnings import config_warnings
from doormail.settings import Settings, apply_patch, describe

WORKING: dict[str, Any] = {
    "smtp": {"enabled": True, "server": "mail.example.com", "from": "door@example.org"},
    "email_on_call": {"send": "missed", "default_to": "desk@example.com"},
    "email_on_access": {"send": "denied", "default_to": "security@example.com"},
    "email_on_event": {"to": "admin@example.com", "tamper": {"enabled": True}},
    "camera": {"source": "http", "url": "http://cam.example/snapshot.jpg"},
}


def warned(patch: dict[str, Any]) -> dict[str, str]:
    settings = apply_patch(apply_patch(Settings(), WORKING), patch)
    return {warning.field: warning.message for warning in config_warnings(settings)}


def test_settings_that_will_mail_have_no_warnings() -> None:
    assert warned({}) == {}


def test_smtp_service_enabled_off_warns_on_the_smtp_tab_and_every_tab_that_sends() -> None:
    found = warned({"smtp": {"enabled": False}})
    assert found["smtp.enabled"] == (
        "SMTP Service Enabled is off: no event mail will go out until it is ticked"
        " (E-Mail on Call, E-Mail on Access, E-Mail on Event would send)"
    )
    for field in ("email_on_call.send", "email_on_access.send", "email_on_event.tamper.enabled"):
        assert "SMTP Service Enabled (on the SMTP tab) is off" in found[field]


def test_an_enabled_device_event_with_no_address_warns() -> None:
    found = warned({"email_on_event": {"to": "", "device_rebooted": {"enabled": True}}})
    assert found == {
        "email_on_event.to": "Send to E-Mail Address is empty: Device Rebooted, Tamper Switch"
        " Activation is ticked but makes no mail"
    }


def test_access_mail_without_default_to_warns_that_denied_accesses_make_no_mail() -> None:
    found = warned({"email_on_access": {"default_to": ""}})
    assert list(found) == ["email_on_access.default_to"]
    assert "a denied card, Bluetooth or fingerprint" in found["email_on_access.default_to"]


def test_call_mail_without_default_to_warns() -> None:
    assert list(warned({"email_on_call": {"default_to": ""}})) == ["email_on_call.default_to"]


@pytest.mark.parametrize("section", ["email_on_call", "email_on_access", "email_on_event"])
def test_snapshots_attached_with_no_camera_warn(section: str) -> None:
    found = warned({"camera": {"source": "none"}, section: {"snapshots": {"attach": True}}})
    field = f"{section}.snapshots.attach"
    assert list(found) == [field]
    assert found[field] == (
        f"{describe(field).title} is ticked, but Camera Source is None (on the Camera tab):"
        " the mails carry an N/A picture"
    )


def test_tabs_that_do_not_send_carry_no_warnings() -> None:
    off = {"send": "never", "default_to": ""}
    found = warned(
        {
            "smtp": {"enabled": False},
            "email_on_call": off,
            "email_on_access": off,
            "email_on_event": {"to": "", "tamper": {"enabled": False}},
        }
    )
    assert list(found) == ["smtp.enabled"]


def test_the_api_lists_the_warnings(api: TestClient) -> None:
    assert api.get("/api/config/warnings").json() == {
        "warnings": [
            {
                "field": "smtp.enabled",
                "message": "SMTP Service Enabled is off: no event mail will go out until it is"
                " ticked",
            }
        ]
    }
    api.patch("/api/config", json=WORKING)
    assert api.get("/api/config/warnings").json() == {"warnings": []}
