"""Apply & Test runs without HTTP: what a run is checked for before it starts, how its log is
followed until it ends, and that only the newest runs are kept."""

from __future__ import annotations

import pytest

from doormail.app import Service
from doormail.applytest import SmtpTests
from doormail.settings import SettingsError
from tests.camera.fakes import NoCamera
from tests.conftest import free_port


def _tests(service: Service, keep: int = 50) -> SmtpTests:
    return SmtpTests(service.settings.load, service.certificates.tls_context, NoCamera(), keep=keep)


def _down_server() -> dict[str, object]:
    return {"server": "127.0.0.1", "port": free_port(), "from": "door@example.org"}


@pytest.mark.parametrize(
    ("to", "smtp", "field"),
    [
        ("not-an-address", {}, "to"),
        ("a@example.com, b@example.com", {}, "to"),
        ("a@example.com", {}, "smtp.server"),
        ("a@example.com", {"server": "127.0.0.1"}, "smtp.from"),
        ("a@example.com", {"server": "127.0.0.1", "security": "ssl"}, "smtp.security"),
        ("a@example.com", {"server": "127.0.0.1", "colour": "red"}, "smtp.colour"),
    ],
)
def test_a_run_that_cannot_start_names_the_field(
    service: Service, to: str, smtp: dict[str, object], field: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        _tests(service).prepare(to, smtp)
    assert caught.value.field == field


async def test_following_a_run_yields_every_line_and_ends_with_the_hint(service: Service) -> None:
    tests = _tests(service)
    run = tests.start("alice@example.com", _down_server())
    lines = [line async for line in run.follow()]
    assert run.state == "failed"
    assert [line.stage for line in lines][:4] == ["message", "dkim", "resolving", "connecting"]
    assert lines[-1].stage == "hint"
    assert "smtp.port" in lines[-1].message
    assert lines == run.log
    # Following a finished run replays its log and ends at once.
    assert [line async for line in run.follow()] == lines


async def test_only_the_newest_runs_are_kept(service: Service) -> None:
    tests = _tests(service, keep=2)
    runs = [tests.start("alice@example.com", _down_server()) for _ in range(3)]
    for run in runs:
        assert run.task is not None
        await run.task
    assert tests.get(runs[0].id) is None
    assert tests.get(runs[1].id) is runs[1]
    assert tests.get(runs[2].id) is runs[2]


async def test_a_test_sent_while_smtp_service_enabled_is_off_says_no_event_mail_will_go_out(
    service: Service,
) -> None:
    from aiosmtpd.controller import Controller

    from tests.scripted_smtp import Scripted

    controller = Controller(Scripted(), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        smtp = {"server": "127.0.0.1", "port": controller.port, "security": "none"}
        run = _tests(service).start("alice@example.com", smtp | {"from": "door@example.org"})
        lines = [line async for line in run.follow()]
    finally:
        controller.stop()
    assert run.state == "sent"
    assert lines[-1].stage == "reply"
    assert run.public()["warnings"] == [
        {
            "field": "smtp.enabled",
            "message": "SMTP Service Enabled is off: no event mail will go out until it is ticked",
        }
    ]
