"""The configuration model: the manual's parameters, SPEC defaults, and errors naming the field."""

from __future__ import annotations

from typing import Any, Literal, get_args, get_origin

import pytest

from doormail import settings as model
from doormail.settings import Settings, SettingsError, apply_patch, apply_replace
from tests.settings_paths import SETTINGS


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
        "serial": "",
        "licenses": [],
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


# A stored secret is bound to where it goes (SPEC section 1).

SMTP_LOGIN = {
    "server": "mail.example.com",
    "port": 587,
    "username": "door@example.com",
    "password": "S3cretSMTPpw",
}
OAUTH2 = {
    "token_url": "https://login.example.com/token",
    "client_id": "doormail",
    "client_secret": "client-s3cret",
    "refresh_token": "refresh-s3cret",
}


def refused(current: Settings, patch: dict[str, object]) -> SettingsError:
    with pytest.raises(SettingsError) as caught:
        apply_patch(current, patch)
    return caught.value


@pytest.mark.parametrize(
    "change", [{"server": "127.0.0.1"}, {"port": 2599}, {"security": "none"}, {"auth": "xoauth2"}]
)
def test_a_stored_smtp_password_is_not_sent_to_a_changed_server_unless_given_again(
    change: dict[str, object],
) -> None:
    stored = apply_patch(Settings(), {"smtp": SMTP_LOGIN})
    error = refused(stored, {"smtp": change})
    assert error.field == "smtp.password"
    assert f"smtp.{next(iter(change))} changed" in error.message
    assert "must be given again" in error.message
    assert "S3cretSMTPpw" not in error.message
    moved = apply_patch(stored, {"smtp": {**change, "password": "new-pw"}})
    assert moved.smtp.password == "new-pw"
    cleared = apply_patch(stored, {"smtp": {**change, "password": ""}})
    assert cleared.smtp.password == ""


def test_settings_that_leave_the_smtp_server_where_it_was_keep_the_stored_password() -> None:
    stored = apply_patch(Settings(), {"smtp": SMTP_LOGIN})
    same = {"server": "Mail.Example.com ", "port": 587, "from": "door@example.com"}
    kept = apply_patch(stored, {"smtp": same, "device": {"name": "Gate 2"}})
    assert kept.smtp.password == "S3cretSMTPpw"


def test_without_a_stored_password_the_smtp_server_may_change_freely() -> None:
    stored = apply_patch(Settings(), {"smtp": {**SMTP_LOGIN, "password": ""}})
    assert apply_patch(stored, {"smtp": {"server": "127.0.0.1"}}).smtp.server == "127.0.0.1"


def test_the_oauth2_secrets_are_not_sent_to_a_changed_token_url_unless_given_again() -> None:
    stored = apply_patch(Settings(), {"smtp": {"auth": "xoauth2", "oauth2": OAUTH2}})
    patch = {"smtp": {"oauth2": {"token_url": "http://127.0.0.1:2599/token"}}}
    error = refused(stored, patch)
    assert error.field == "smtp.oauth2.client_secret"
    assert "smtp.oauth2.token_url changed" in error.message
    given = {"client_secret": "c2", "refresh_token": "r2"}
    moved = apply_patch(stored, {"smtp": {"oauth2": {**patch["smtp"]["oauth2"], **given}}})
    assert moved.smtp.oauth2.refresh_token == "r2"
    only_secret = {"smtp": {"oauth2": {**patch["smtp"]["oauth2"], "client_secret": "c2"}}}
    assert refused(stored, only_secret).field == "smtp.oauth2.refresh_token"


def test_the_oauth2_secrets_are_bound_to_the_smtp_server_that_gets_their_access_token() -> None:
    stored = apply_patch(Settings(), {"smtp": {"auth": "xoauth2", "oauth2": OAUTH2}})
    assert refused(stored, {"smtp": {"server": "127.0.0.1"}}).field == "smtp.oauth2.client_secret"


def test_a_secret_that_is_not_stored_need_not_be_given() -> None:
    public_client = {**OAUTH2, "client_secret": ""}
    stored = apply_patch(Settings(), {"smtp": {"auth": "xoauth2", "oauth2": public_client}})
    patch = {"smtp": {"oauth2": {"token_url": "https://new.example/token", "refresh_token": "r"}}}
    assert apply_patch(stored, patch).smtp.oauth2.token_url == "https://new.example/token"


CAMERA = {
    "source": "http",
    "url": "http://cam.example/snapshot.jpg",
    "username": "viewer",
    "password": "cam-s3cret",
}


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/snapshot.jpg",
        "https://cam.example/snapshot.jpg",
        "http://cam.example:8080/snapshot.jpg",
    ],
)
def test_the_camera_password_is_not_sent_to_another_camera_host_unless_given_again(
    url: str,
) -> None:
    stored = apply_patch(Settings(), {"camera": CAMERA})
    error = refused(stored, {"camera": {"url": url}})
    assert error.field == "camera.password"
    assert "camera.url changed" in error.message
    assert apply_patch(stored, {"camera": {"url": url, "password": "p2"}}).camera.password == "p2"


def test_another_path_on_the_same_camera_keeps_the_camera_password() -> None:
    stored = apply_patch(Settings(), {"camera": CAMERA})
    for url in ("http://cam.example/other.jpg", "http://CAM.example:80/x.jpg"):
        assert apply_patch(stored, {"camera": {"url": url}}).camera.password == "cam-s3cret"


def test_the_mqtt_password_is_bound_to_the_broker() -> None:
    mqtt = {"url": "mqtts://broker.example:8883", "username": "door", "password": "m"}
    stored = apply_patch(Settings(), {"sources": {"mqtt": mqtt}})
    patch = {"sources": {"mqtt": {"url": "mqtt://127.0.0.1:1883"}}}
    assert refused(stored, patch).field == "sources.mqtt.password"


def test_put_that_moves_the_smtp_server_without_the_password_is_refused() -> None:
    stored = apply_patch(Settings(), {"smtp": SMTP_LOGIN})
    document = stored.public()
    document["smtp"]["server"] = "127.0.0.1"
    with pytest.raises(SettingsError) as caught:
        apply_replace(stored, document)
    assert caught.value.field == "smtp.password"
    document["smtp"]["password"] = "new-pw"
    assert apply_replace(stored, document).smtp.password == "new-pw"


def test_a_trial_leaves_out_the_secrets_whose_destination_it_changes() -> None:
    stored = apply_patch(Settings(), {"smtp": {**SMTP_LOGIN, "oauth2": OAUTH2}})
    trial, withheld = model.apply_trial(stored, {"smtp": {"server": "127.0.0.1"}})
    assert [unbound.secret for unbound in withheld] == [
        "smtp.password",
        "smtp.oauth2.client_secret",
        "smtp.oauth2.refresh_token",
    ]
    assert (trial.smtp.server, trial.smtp.password) == ("127.0.0.1", "")
    assert (trial.smtp.oauth2.client_secret, trial.smtp.oauth2.refresh_token) == ("", "")
    assert stored.smtp.password == "S3cretSMTPpw"
    same, none_withheld = model.apply_trial(stored, {"smtp": {"from": "door@example.com"}})
    assert none_withheld == [] and same.smtp.password == "S3cretSMTPpw"


# A password written into a URL is a secret too.

URL_WITH_PASSWORD = "rtsp://viewer:pa%40ss@cam.example:554/stream1"


def with_camera_url(url: str = URL_WITH_PASSWORD) -> Settings:
    return apply_patch(Settings(), {"camera": {"source": "rtsp", "url": url}})


def test_a_password_in_the_camera_url_is_shown_as_stars() -> None:
    stored = with_camera_url()
    assert stored.camera.url == URL_WITH_PASSWORD
    masked = "rtsp://viewer:***@cam.example:554/stream1"
    assert stored.public()["camera"]["url"] == masked
    assert stored.exported()["camera"]["url"] == masked


def test_the_masked_camera_url_sent_back_keeps_the_stored_password() -> None:
    stored = with_camera_url()
    assert (
        apply_patch(stored, {"camera": stored.public()["camera"]}).camera.url == URL_WITH_PASSWORD
    )
    assert apply_replace(stored, stored.public()).camera.url == URL_WITH_PASSWORD
    assert apply_replace(stored, stored.exported()).camera.url == URL_WITH_PASSWORD
    other_path = "rtsp://viewer:***@cam.example/stream2"
    moved = apply_patch(stored, {"camera": {"url": other_path}}).camera.url
    assert moved == "rtsp://viewer:pa%40ss@cam.example/stream2"


def test_a_masked_camera_url_for_another_host_is_refused_naming_camera_url() -> None:
    stored = with_camera_url()
    error = refused(stored, {"camera": {"url": "rtsp://viewer:***@127.0.0.1:554/stream1"}})
    assert error.field == "camera.url"
    assert "password" in error.message
    assert (
        refused(
            with_camera_url("rtsp://cam.example/s"),
            {"camera": {"url": "rtsp://u:***@cam.example/s"}},
        ).field
        == "camera.url"
    )


def test_a_camera_url_with_a_new_password_or_none_replaces_the_stored_one() -> None:
    stored = with_camera_url()
    new = "rtsp://viewer:n3w@10.0.0.9/stream1"
    assert apply_patch(stored, {"camera": {"url": new}}).camera.url == new
    bare = "rtsp://cam.example:554/stream1"
    assert apply_patch(stored, {"camera": {"url": bare}}).camera.url == bare


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtsp://cam.example/s", "rtsp://cam.example/s"),
        ("rtsp://viewer@cam.example/s", "rtsp://viewer@cam.example/s"),
        ("rtsp://viewer:@cam.example/s", "rtsp://viewer:@cam.example/s"),
        ("http://viewer:p@ss:w0rd@cam.example/s?x=1", "http://viewer:***@cam.example/s?x=1"),
        ("http://viewer:pw@[fe80::1]:8080", "http://viewer:***@[fe80::1]:8080"),
        ("http://viewer:pw@[fe80::1/s", "http://viewer:***@[fe80::1/s"),
        ("rtsp://:pw@cam.example", "rtsp://:***@cam.example"),
    ],
)
def test_a_url_shows_stars_for_any_password_it_holds(url: str, shown: str) -> None:
    from doormail.destinations import mask_url

    assert mask_url(url) == shown


@pytest.mark.parametrize("path", SETTINGS)
def test_every_setting_has_a_label_and_a_one_line_help(path: str) -> None:
    info = SETTINGS[path]
    assert info.title, f"{path} has no title"
    assert info.description and "\n" not in info.description, f"{path} has no one-line help"
    described = model.describe(path)
    assert described.title and described.description.endswith(".")


@pytest.mark.parametrize(
    "path", [p for p, info in SETTINGS.items() if get_origin(info.annotation) is Literal]
)
def test_every_choice_of_a_setting_has_the_manuals_name(path: str) -> None:
    allowed = get_args(SETTINGS[path].annotation)
    choices = model.describe(path).choices
    assert tuple(value for value, _name in choices) == allowed
    assert all(name != value for value, name in choices)


@pytest.mark.parametrize(
    ("path", "title"),
    [
        ("email_on_call.snapshots.attach", "Attach Snapshots"),
        ("email_on_call.snapshots.count", "Number of Snapshots Attached"),
        ("email_on_event.snapshots.attach", "Attach Camera Snapshots"),
        ("email_on_event.snapshots.count", "Count of Snapshots to Be Attached"),
        ("email_on_call.body", "Body"),
        ("email_on_event.tamper.body", "E-Mail Body"),
        ("email_on_event.sip_registration_lost.enabled", "SIP Registration Lost"),
        ("email_on_event.device_rebooted.enabled", "Device Rebooted"),
        ("email_on_event.tamper.enabled", "Tamper Switch Activation"),
        ("email_on_event.tamper", "Tamper Activated Message"),
    ],
)
def test_a_tab_words_a_shared_setting_as_the_manual_does_there(path: str, title: str) -> None:
    assert model.describe(path).title == title


@pytest.mark.parametrize(
    "path", [path for path in SETTINGS if model.describe(path).minimum is not None]
)
def test_the_limits_a_form_is_given_are_those_the_model_enforces(path: str) -> None:
    described = model.describe(path)
    assert described.minimum is not None
    bounds = [described.minimum] + ([described.maximum] if described.maximum is not None else [])
    for value in bounds:
        assert _with(path, value) is None
    assert _with(path, described.minimum - 1) == path
    if described.maximum is not None:
        assert _with(path, described.maximum + 1) == path


def _with(path: str, value: int) -> str | None:
    """The field a patch setting `path` to `value` is refused for, or None when accepted."""
    patch: Any = value
    for key in reversed(path.split(".")):
        patch = {key: patch}
    try:
        apply_patch(Settings(), patch)
    except SettingsError as error:
        return error.field
    return None


def test_a_path_that_is_no_setting_is_named() -> None:
    with pytest.raises(KeyError, match="nonsense"):
        model.describe("smtp.nonsense")
