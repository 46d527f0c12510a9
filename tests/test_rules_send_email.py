"""The rule of Send E-Mail (SPEC section 7), without a users list: one mail per address the
order names, its own templates or those of E-Mail on Call, its snapshots over the last
`time_span` seconds at its own size, its From; nothing while SMTP Service Enabled is off."""

from __future__ import annotations

from datetime import UTC, datetime

from doormail import rules
from doormail.settings import Settings, apply_patch
from doormail.users.model import User

AT = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
CONFIG = {
    "device": {"name": "Front door", "timezone": "UTC", "datetime_format": "%Y-%m-%d %H:%M"},
    "smtp": {"enabled": True, "server": "127.0.0.1", "from": "door@example.org"},
}


def settings(**smtp: object) -> Settings:
    return apply_patch(Settings(), {**CONFIG, "smtp": {**CONFIG["smtp"], **smtp}})


def test_each_address_of_the_order_gets_one_mail_of_its_own() -> None:
    order = rules.SendEmail(("alice@example.com", "bob@example.com", "ALICE@example.com"))
    decision = rules.send_email_mails(order, settings(), AT)
    assert decision.reason is None
    assert [mail.recipient for mail in decision.mails] == ["alice@example.com", "bob@example.com"]
    assert {mail.kind for mail in decision.mails} == {"send_email"}


def test_without_templates_the_order_takes_those_of_email_on_call() -> None:
    configured = settings()
    [mail] = rules.send_email_mails(rules.SendEmail(("a@example.com",)), configured, AT).mails
    assert (mail.subject_template, mail.body_template) == (
        configured.email_on_call.subject,
        configured.email_on_call.body,
    )
    order = rules.SendEmail(("a@example.com",), subject="Parcel at $DeviceName$", body="<p>Hi</p>")
    [mail] = rules.send_email_mails(order, configured, AT).mails
    assert (mail.subject_template, mail.body_template) == ("Parcel at $DeviceName$", "<p>Hi</p>")


def test_the_placeholders_are_the_device_the_time_and_the_users_name() -> None:
    order = rules.SendEmail(("a@example.com",), user=User(id="u-1", name="Alice Novak"))
    [mail] = rules.send_email_mails(order, settings(), AT).mails
    assert mail.values == {
        "DeviceName": "Front door",
        "DateTime": "2025-03-14 09:26",
        "User": "Alice Novak",
    }
    [plain] = rules.send_email_mails(rules.SendEmail(("a@example.com",)), settings(), AT).mails
    assert "User" not in plain.values


def test_snapshots_span_the_last_time_span_at_the_orders_size_and_from() -> None:
    order = rules.SendEmail(
        ("a@example.com",),
        sender="desk@example.org",
        snapshots=3,
        time_span=4,
        width=320,
        height=200,
    )
    [mail] = rules.send_email_mails(order, settings(), AT).mails
    assert (mail.snapshots.attach, mail.snapshots.count) == (True, 3)
    assert mail.span == (AT.timestamp() - 4, AT.timestamp())
    assert mail.picture_size == (320, 200)
    assert mail.sender == "desk@example.org"


def test_an_order_for_no_snapshots_attaches_none() -> None:
    order = rules.SendEmail(("a@example.com",), snapshots=0)
    [mail] = rules.send_email_mails(order, settings(), AT).mails
    assert not mail.snapshots.attach


def test_smtp_service_disabled_sends_no_mail_on_demand_either() -> None:
    decision = rules.send_email_mails(
        rules.SendEmail(("a@example.com",)), settings(enabled=False), AT
    )
    assert decision == rules.Decision((), rules.SMTP_DISABLED)
