"""The admin account: its password from DOORMAIL_ADMIN_PASSWORD, or generated once."""

from __future__ import annotations

from pathlib import Path

from doormail.app import Paths, build_service


def test_a_generated_password_is_returned_once_and_works(
    tmp_path: Path, database: str | None
) -> None:
    service = build_service(Paths.resolve(str(tmp_path), database))
    generated = service.accounts.ensure_admin(None)
    assert generated
    assert service.accounts.check_password("admin", generated)
    assert service.accounts.ensure_admin(None) is None
    service.engine.dispose()


def test_a_given_password_is_used_and_not_printed(tmp_path: Path, database: str | None) -> None:
    service = build_service(Paths.resolve(str(tmp_path), database))
    assert service.accounts.ensure_admin("correct horse") is None
    assert service.accounts.check_password("admin", "correct horse")
    assert not service.accounts.check_password("admin", "wrong")
    assert not service.accounts.check_password("root", "correct horse")
    service.engine.dispose()
