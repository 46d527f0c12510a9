"""Password guessing against a real `doormail serve`: X-Forwarded-For counts only when it comes
from a proxy named by `--forwarded-allow-ips`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningService, basic_auth, start_serve

pytestmark = pytest.mark.integration


def serve(tmp_path: Path, options: Sequence[str] = ()) -> RunningService:
    return start_serve(tmp_path / "served", options=options)


def fail_then_time_one_more(url: str) -> float:
    """Five wrong passwords from one forwarded address, then how long a sixth from another
    forwarded address takes (each under its own user name, so only addresses are counted)."""
    with httpx.Client(base_url=url, timeout=30) as client:
        for n in range(5):
            reply = client.get(
                "/api/config",
                headers={**basic_auth(f"user{n}", "wrong"), "X-Forwarded-For": "198.51.100.1"},
            )
            assert reply.status_code == 401
        started = time.monotonic()
        reply = client.get(
            "/api/config",
            headers={**basic_auth("user9", "wrong"), "X-Forwarded-For": "198.51.100.2"},
        )
        assert reply.status_code == 401
        return time.monotonic() - started


def test_a_spoofed_x_forwarded_for_does_not_reset_the_count(tmp_path: Path) -> None:
    served = serve(tmp_path)
    try:
        # The sixth failure from the one real address waits a second before its check.
        assert fail_then_time_one_more(served.url) >= 0.9
    finally:
        served.stop()


def test_x_forwarded_for_is_the_client_when_it_comes_from_a_named_proxy(tmp_path: Path) -> None:
    served = serve(tmp_path, ("--forwarded-allow-ips", "127.0.0.1"))
    try:
        assert fail_then_time_one_more(served.url) < 0.6
    finally:
        served.stop()
