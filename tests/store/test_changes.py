"""Several processes on one database (SPEC section 11): settings, certificates and users changed
through one apply in every other at its next use, found by a change counter rather than by
reading the whole state again. Two services built on the same database stand for two
processes; on SQLite and on PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import event

from doormail.app import Service, build_service
from doormail.certificates import pem
from doormail.settings import Smtp, apply_patch
from doormail.store.changes import CHECK_EVERY
from doormail.users.model import User


@pytest.fixture
def other(service: Service) -> Iterator[Service]:
    """A second service on the same data folder and database: another process."""
    built = build_service(service.paths)
    try:
        yield built
    finally:
        built.engine.dispose()


def _statements(service: Service) -> list[str]:
    seen: list[str] = []

    def remember(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        seen.append(statement)

    event.listen(service.engine, "before_cursor_execute", remember)
    return seen


def test_settings_saved_through_one_process_apply_in_the_other(
    service: Service, other: Service
) -> None:
    assert other.settings.load().device.name != "Hall"
    service.settings.save(apply_patch(service.settings.load(), {"device": {"name": "Hall"}}))
    assert service.settings.load().device.name == "Hall", "at once in the process that saved"
    assert _within_a_second(lambda: other.settings.load().device.name == "Hall")


def _within_a_second(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + 1.0
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_unchanged_settings_are_not_read_again_only_their_counter(
    service: Service, other: Service
) -> None:
    first = other.settings.load()
    statements = _statements(other)
    time.sleep(CHECK_EVERY)
    assert other.settings.load() is first
    assert other.settings.load() is first, "and not even the counter again at once"
    reads = [s for s in statements if s.lstrip().startswith("SELECT")]
    assert len(reads) == 1 and "changes.counter" in reads[0], statements


def test_a_certificate_changed_through_one_process_is_used_by_the_others_tls(
    service: Service, other: Service
) -> None:
    first_ca, _ = pem.self_signed("First CA")
    second_ca, _ = pem.self_signed("Second CA")
    smtp = Smtp(verify_certificate=True, ca="ca1")
    service.certificates.put("ca1", first_ca)
    before = other.certificates.tls_context(smtp)
    assert other.certificates.tls_context(smtp) is before, "built once while nothing changes"
    service.certificates.put("ca1", second_ca)
    after = other.certificates.tls_context(smtp)
    assert after is not before, "built again from the slot as it is now"
    assert other.certificates.tls_context(smtp) is after


def test_a_user_added_through_one_process_is_found_by_the_other(
    service: Service, other: Service
) -> None:
    assert other.users.by_number("202") is None
    service.users.create(User(id="u-bob", name="Bob", email="bob@example.com", numbers=("202",)))
    assert service.users.by_number("202") is not None, "at once in the process that added it"

    def found() -> bool:
        user = other.users.by_number("202")
        return user is not None and user.name == "Bob"

    assert _within_a_second(found)


def test_an_unchanged_users_list_is_not_read_again_only_its_counter(
    service: Service, other: Service
) -> None:
    service.users.create(User(id="u-bob", name="Bob", email="bob@example.com", numbers=("202",)))
    assert other.users.by_number("202") is not None
    statements = _statements(other)
    time.sleep(CHECK_EVERY)
    assert other.users.by_card("DEADBEEF01") is None
    assert other.users.by_number("202") is not None, "and not even the counter again at once"
    reads = [s for s in statements if s.lstrip().startswith("SELECT")]
    assert len(reads) == 1 and "changes.counter" in reads[0], statements
