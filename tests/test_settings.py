"""The configuration model: the manual's parameters, SPEC defaults, and errors naming the field."""

from __future__ import annotations

import pytest

from doormail import settings as model
from doormail.settings import Settings, SettingsError, apply_patch, apply_replace


def error_field(patch: dict[str, object]) -> str:
    with pytest.raises(SettingsError) as caught:
        apply_patch(Settings(), patch)
    return caught.value.field


def test_defaults_are_those_of_the_spec() -> None:
    doc = Settings().public()
    assert doc["device"] == {
        "name": "doormail",
        "timezone": "UTC",
        "datetime_format": "%Y-%m-%d %H:%M:%S",
    }
    assert doc["smtp"]["enabled"] is False
    assert doc["smtp"]["port"] == 25
    assert doc["smtp"]["security"] == "auto"
    assert doc["smtp"]["verify_certificate"] is True
    assert doc["smtp"]["ca"] == "system"
    assert doc["smtp"]["certificate"] == "self-signed"
    assert doc["smtp"]["deliver_in"] == 86400
    assert doc["smtp"]["from"] == ""
    assert doc["email_on_call"]["send"] == "never"
    assert doc["email_on_access"]["send"] == "never"
    assert doc["email_on_call"]["snapshots"] == {
        "attach": False,
        "count": 1,
        "resolution": "640x480",
    }
    assert doc["email_on_event"]["tamper"]["enabled"] is False
    assert doc["camera"]["source"] == "none"
    assert doc["camera"]["buffer_seconds"] == 30
    assert doc["smtp"]["max_message_bytes"] == 10_000_000
    assert doc["limits"] == {"per_recipient_per_hour": 0, "access_denied_burst": 0}


def test_every_tab_has_a_sensible_default_subject_and_body() -> None:
    settings = Settings()
    messages = [
        settings.email_on_call,
        settings.email_on_access,
        settings.email_on_event.sip_registration_lost,
        settings.email_on_event.device_rebooted,
        settings.email_on_event.tamper,
    ]
    for message in messages:
        assert "$DeviceName$" in message.subject
        assert "$DateTime$" in message.body


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"smtp": {"port": 0}}, "smtp.port"),
        ({"smtp": {"port": 65536}}, "smtp.port"),
        ({"smtp": {"port": "twenty-five"}}, "smtp.port"),
        ({"smtp": {"security": "ssl"}}, "smtp.security"),
        ({"smtp": {"deliver_in": 59}}, "smtp.deliver_in"),
        ({"smtp": {"deliver_in": 604801}}, "smtp.deliver_in"),
        ({"smtp": {"ca": "ca4"}}, "smtp.ca"),
        ({"smtp": {"certificate": "user4"}}, "smtp.certificate"),
        ({"smtp": {"from": "not an address"}}, "smtp.from"),
        ({"smtp": {"server": "mail example com"}}, "smtp.server"),
        ({"email_on_call": {"send": "always"}}, "email_on_call.send"),
        ({"email_on_call": {"default_to": "a@example.com, nope"}}, "email_on_call.default_to"),
        ({"email_on_call": {"snapshots": {"count": 6}}}, "email_on_call.snapshots.count"),
        ({"email_on_call": {"snapshots": {"count": 0}}}, "email_on_call.snapshots.count"),
        (
            {"email_on_access": {"snapshots": {"resolution": "800x600"}}},
            "email_on_access.snapshots.resolution",
        ),
        ({"email_on_access": {"send": "valid"}}, "email_on_access.send"),
        ({"email_on_event": {"to": "x"}}, "email_on_event.to"),
        ({"email_on_event": {"to": "jiří@example.com"}}, "email_on_event.to"),
        ({"email_on_event": {"tamper": {"enabled": "maybe"}}}, "email_on_event.tamper.enabled"),
        ({"email_on_call": {"subject": "a\r\nBcc: x@evil.example"}}, "email_on_call.subject"),
        ({"device": {"timezone": "Mars/Olympus"}}, "device.timezone"),
        ({"device": {"datetime_format": "no codes"}}, "device.datetime_format"),
        ({"camera": {"source": "rtsp"}}, "camera.url"),
        ({"camera": {"source": "http", "url": "rtsp://cam/1"}}, "camera.url"),
        ({"smtp": {"enabled": True, "server": "mail.example.com"}}, "smtp.from"),
        ({"smtp": {"enabled": True, "from": "door@example.com"}}, "smtp.server"),
        ({"smtp": {"unknown": 1}}, "smtp.unknown"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_wrong_setting_names_its_field(patch: dict[str, object], field: str) -> None:
    assert error_field(patch) == field


def test_resolutions_are_those_of_the_manual() -> None:
    for resolution in model.RESOLUTIONS:
        patch = {"email_on_event": {"snapshots": {"resolution": resolution}}}
        assert apply_patch(Settings(), patch).email_on_event.snapshots.resolution == resolution


def test_default_to_accepts_several_addresses_separated_with_a_comma() -> None:
    patch = {"email_on_call": {"default_to": "a@example.com,b@example.org ,  "}}
    assert apply_patch(Settings(), patch).email_on_call.default_to == "a@example.com, b@example.org"


def test_patch_merges_and_keeps_the_rest() -> None:
    before = apply_patch(Settings(), {"smtp": {"server": "mail.example.com", "port": 587}})
    after = apply_patch(before, {"smtp": {"port": 465}})
    assert after.smtp.server == "mail.example.com"
    assert after.smtp.port == 465


def test_secrets_are_write_only() -> None:
    stored = apply_patch(Settings(), {"smtp": {"password": "s3cret"}, "camera": {"password": "c"}})
    public = stored.public()
    assert "password" not in public["smtp"]
    assert public["smtp"]["password_set"] is True
    assert public["camera"]["password_set"] is True
    assert "s3cret" not in str(public)
    assert "s3cret" not in str(stored.exported())


def test_put_round_trip_of_what_get_shows_keeps_the_secrets() -> None:
    stored = apply_patch(Settings(), {"smtp": {"password": "s3cret"}})
    replaced = apply_replace(stored, stored.public())
    assert replaced.smtp.password == "s3cret"


def test_put_replaces_the_whole_document() -> None:
    stored = apply_patch(Settings(), {"smtp": {"server": "mail.example.com"}})
    replaced = apply_replace(stored, {"device": {"name": "Gate"}})
    assert replaced.smtp.server == ""
    assert replaced.device.name == "Gate"


def test_put_with_an_empty_secret_clears_it() -> None:
    stored = apply_patch(Settings(), {"smtp": {"password": "s3cret"}})
    assert apply_replace(stored, {"smtp": {"password": ""}}).smtp.password == ""
