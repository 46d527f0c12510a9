"""The first start: the database migrated and the self-signed certificate made once, by
`doormail serve` in a child process, so that the service keeps only what it uses in memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from doormail import firststart
from doormail.app import Paths, build_service
from doormail.firststart import FirstStartError
from doormail.store import open_engine
from doormail.store.engine import current_revision, head_revision, sqlite_url

# What only a first start, a certificate upload, a camera or an OAuth2 login needs.
NOT_NEEDED_WHEN_IDLE = (
    "alembic",
    "cryptography",
    "PIL",
    "av",
    "httpx",
    "dkim",
    "dns",
    "nacl",
    "tzlocal",
    "aiomqtt",
    "paho",
)


def test_first_start_in_a_child_migrates_the_database_and_makes_the_certificate(
    data_dir: Path,
) -> None:
    data_dir.mkdir()
    url = sqlite_url(data_dir)
    engine = open_engine(url)
    assert not firststart.is_done(engine, data_dir)

    firststart.prepare_apart(data_dir, url)

    assert current_revision(engine) == head_revision()
    assert firststart.is_done(engine, data_dir)


def test_a_service_started_again_keeps_its_certificate(data_dir: Path) -> None:
    paths = Paths.resolve(str(data_dir))
    first = build_service(paths, first_start_apart=True).certificates.get("self-signed")
    second = build_service(paths, first_start_apart=True).certificates.get("self-signed")
    assert not first.empty
    assert first.fingerprint == second.fingerprint


def test_a_first_start_that_fails_says_why(data_dir: Path) -> None:
    data_dir.mkdir()
    url = sqlite_url(data_dir)
    with open_engine(url).begin() as connection:
        connection.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32))")
        connection.exec_driver_sql("INSERT INTO alembic_version VALUES ('9999')")
    with pytest.raises(FirstStartError, match=r"preparing the database failed: .*9999"):
        firststart.prepare_apart(data_dir, url)


def test_an_idle_service_does_not_hold_what_it_is_not_using(data_dir: Path) -> None:
    script = textwrap.dedent(
        f"""
        import json, sys
        from doormail.app import Paths, build_service
        from doormail.web.app import create_app
        create_app(build_service(Paths.resolve({str(data_dir)!r}), first_start_apart=True))
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {NOT_NEEDED_WHEN_IDLE!r})))
        """
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(loaded.stdout) == []


@pytest.mark.parametrize("machine", ["Europe/Prague", "America/New_York"])
def test_a_new_installation_takes_the_machines_time_zone_and_shows_it(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, machine: str
) -> None:
    monkeypatch.setenv("TZ", machine)  # how the child finds the machine's zone first
    service = build_service(Paths.resolve(str(data_dir)), first_start_apart=True)
    device = service.settings.load().device
    assert (device.timezone, device.datetime_format) == (machine, "%Y-%m-%d %H:%M:%S %Z")


@pytest.mark.parametrize("found", [None, "Not/A_Zone", RuntimeError("no zone configured")])
def test_a_machine_whose_zone_cannot_be_told_gets_utc(
    monkeypatch: pytest.MonkeyPatch, found: object
) -> None:
    import tzlocal

    def localzone_name() -> object:
        if isinstance(found, Exception):
            raise found
        return found

    monkeypatch.setattr(tzlocal, "get_localzone_name", localzone_name)
    assert firststart.machine_timezone() == "UTC"


def test_a_later_first_start_keeps_the_time_zone_chosen(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from doormail.settings import apply_patch

    service = build_service(Paths.resolve(str(data_dir)))
    chosen = {"device": {"timezone": "Asia/Tokyo", "datetime_format": "%d.%m.%Y %H:%M"}}
    service.settings.save(apply_patch(service.settings.load(), chosen))
    monkeypatch.setenv("TZ", "Europe/Prague")
    firststart.prepare(service.engine, data_dir)  # as after an upgrade
    device = service.settings.load().device
    assert (device.timezone, device.datetime_format) == ("Asia/Tokyo", "%d.%m.%Y %H:%M")
