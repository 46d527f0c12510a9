"""The settings tabs are a layout over the settings model: every setting is on one tab, under the
label, help, limits and choices the model states, and every template editor offers the
placeholders the table lists for its kind of mail."""

from __future__ import annotations

from typing import Any

import pytest

from doormail import placeholders
from doormail.settings import SECRET_PATHS, Settings, apply_patch, describe
from doormail.web.ui_common import NAVIGATION
from doormail.web.ui_fields import SETTINGS_TABS, patch_from_form, shown_values
from tests.settings_paths import SETTINGS

SECTIONS = ("smtp", "email_on_call", "email_on_access", "email_on_event", "camera", "device")
FIELDS = {f.path: f for tab in SETTINGS_TABS.values() for f in tab.fields}


def test_every_setting_is_on_one_tab() -> None:
    shown = [f.path for tab in SETTINGS_TABS.values() for f in tab.fields]
    assert sorted(shown) == sorted(SETTINGS)


@pytest.mark.parametrize("path", FIELDS)
def test_a_controls_label_and_help_are_its_settings_title_and_description(path: str) -> None:
    control, described = FIELDS[path], describe(path)
    assert control.label == described.title
    assert control.help.startswith(described.description.removesuffix("."))


@pytest.mark.parametrize("path", FIELDS)
def test_a_controls_limits_and_choices_are_the_models(path: str) -> None:
    control, described = FIELDS[path], describe(path)
    assert (control.minimum, control.maximum) == (described.minimum, described.maximum)
    assert control.options == described.choices
    if control.minimum is not None and control.maximum is not None:
        assert control.help.endswith(f"({control.minimum} to {control.maximum}).")


def test_a_control_follows_the_type_of_its_setting() -> None:
    kinds = {path: f.kind for path, f in FIELDS.items()}
    assert kinds["smtp.enabled"] == "checkbox"
    assert kinds["smtp.port"] == "number"
    assert kinds["smtp.security"] == "select"
    assert kinds["smtp.server"] == "text"
    assert kinds["smtp.from"] == "email"
    assert {path for path, kind in kinds.items() if kind == "secret"} == {
        ".".join(path) for path in SECRET_PATHS
    }


def test_the_manuals_labels_and_options_stay_as_they_are() -> None:
    assert FIELDS["email_on_call.send"].options == (
        ("never", "Do Not Send E-mail"),
        ("any", "Any Outgoing Call"),
        ("missed", "Missed Outgoing Call"),
    )
    assert [f.label for f in SETTINGS_TABS["smtp"].groups[0].fields] == [
        "SMTP Service Enabled",
        "Server Address",
        "Server Port",
        "Security",
        "Verify Server Certificate",
        "CA Certificate",
        "Username",
        "Password",
        "User Certificate",
        "From Address",
        "Deliver In",
    ]
    event = SETTINGS_TABS["email-on-event"]
    assert [group.title for group in event.groups] == [
        None,
        "SIP Registration Lost Message",
        "Device Restart Message",
        "Tamper Activated Message",
        "Snapshots",
    ]


def test_tab_titles_and_intros_are_the_sections_of_the_model() -> None:
    assert [(tab.title, tab.intro) for tab in SETTINGS_TABS.values()] == [
        (describe(section).title, describe(section).description) for section in SECTIONS
    ]
    assert [title for _path, title in NAVIGATION] == [
        "SMTP",
        "E-Mail on Call",
        "E-Mail on Access",
        "E-Mail on Event",
        "Camera",
        "Certificates",
        "Users",
        "Outbox",
        "Events",
        "Device",
        "Devices",
    ]


@pytest.mark.parametrize("kind", placeholders.KINDS)
def test_a_body_editor_offers_the_placeholders_of_its_kind_of_mail(kind: placeholders.Kind) -> None:
    body = FIELDS[f"{placeholders.TEMPLATE_SECTIONS[kind]}.body"]
    assert body.preview == kind
    offered = dict(body.placeholders)
    assert list(offered) == [p.token for p in placeholders.for_kind(kind)]
    for placeholder in placeholders.for_kind(kind):
        assert offered[placeholder.token].startswith(placeholder.description_for(kind))


def test_the_placeholders_beyond_the_manual_are_marked_so() -> None:
    offered = dict(FIELDS["email_on_call.body"].placeholders)
    assert offered["$CallState$"] == "Call state: Missed or Answered (beyond the manual)"
    assert offered["$Snapshots$"].endswith("(beyond the manual)")
    assert not offered["$User$"].endswith("(beyond the manual)")


def test_a_placeholder_added_to_the_table_is_offered_by_the_editors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = placeholders.Placeholder("Weather", "Sunny or not", frozenset({"call"}), lambda _: None)
    monkeypatch.setattr(placeholders, "PLACEHOLDERS", (*placeholders.PLACEHOLDERS, state))
    assert ("$Weather$", "Sunny or not") in FIELDS["email_on_call.body"].placeholders
    assert "$Weather$" not in dict(FIELDS["email_on_access.body"].placeholders)


def test_a_submitted_tab_is_a_patch_the_model_accepts() -> None:
    tab = SETTINGS_TABS["email-on-event"]
    form: dict[str, Any] = {
        f.path: str(value)
        for f, value in zip(
            tab.fields, shown_values(tab, Settings().public()).values(), strict=True
        )
        if f.kind != "checkbox"
    }
    form["email_on_event.tamper.enabled"] = "on"
    saved = apply_patch(Settings(), patch_from_form(tab, form))
    assert saved.email_on_event.tamper.enabled is True
    assert saved.email_on_event.snapshots == Settings().email_on_event.snapshots
