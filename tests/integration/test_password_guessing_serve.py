"""Password guessing against a real `doormail serve`: many wrong passwords at once cannot exhaust
its memory (each Argon2 check takes 64 MiB), and X-Forwarded-For counts only when it comes from a
proxy named by `--forwarded-allow-ips`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningService, basic_auth, start_serve

pytestmark = pytest.mark.integration

MEMORY_CEILING_MB = 300


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc")


async def guess_at_once(url: str, count: int, forwarded: bool) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        return await asyncio.gather(
            *(
                client.get(
                    "/api/config",
                    headers={
                        **basic_auth(f"user{n}" if forwarded else "admin", f"wrong-{n}"),
                        **({"X-Forwarded-For": f"198.51.100.{n}"} if forwarded else {}),
                    },
                )
                for n in range(count)
            )
        )


def serve(tmp_path: Path, options: Sequence[str] = ()) -> RunningService:
    return start_serve(tmp_path / "served", options=options)


@pytest.mark.parametrize(
    "options",
    [(), ("--forwarded-allow-ips", "127.0.0.1")],
    ids=["one-address", "forty-addresses-behind-a-proxy"],
)
def test_forty_wrong_passwords_at_once_keep_the_service_under_300_mb(
    tmp_path: Path, options: Sequence[str]
) -> None:
    served = serve(tmp_path, options)
    try:
        replies = asyncio.run(guess_at_once(served.url, 40, forwarded=bool(options)))
        peak = peak_rss_mb(served.process.pid)
    finally:
        served.stop()
    assert {reply.status_code for reply in replies} <= {401, 429}
    assert any(reply.status_code == 401 for reply in replies)
    for reply in replies:
        if reply.status_code == 429:
            assert reply.json()["error"]["code"] == "too_many_requests"
            assert int(reply.headers["retry-after"]) >= 1
    assert peak < MEMORY_CEILING_MB, f"peak RSS {peak:.0f} MB"


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
