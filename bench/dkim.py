"""DKIM's cost on delivery: the worker draining the same queue into the lab's `smtp-sink` with
signing off (`dkim_reference_mails_per_s`, measured in the same run) and on with an RSA 2048
key and with an Ed25519 key (`dkim_rsa_mails_per_s`, `dkim_ed25519_mails_per_s`). Each mail is
signed right before it is sent, as in service."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from bench.delivery import MAILS, queued_service, sink
from doormail import dkimkey
from doormail.settings import apply_patch

ROUNDS = 2


def signed_rate(count: int, algorithm: dkimkey.Algorithm | None) -> float:
    with tempfile.TemporaryDirectory(prefix="doormail-bench-") as folder:
        service = queued_service(Path(folder), count)
        if algorithm is not None:
            dkim = {"enabled": True, "domain": "example.org", "selector": "bench",
                    "private_key": dkimkey.generate(algorithm)}
            patch = {"smtp": {"dkim": dkim}}
            service.settings.save(apply_patch(service.settings.load(), patch))
        started = time.perf_counter()
        attempted = asyncio.run(service.worker.drain())
        elapsed = time.perf_counter() - started
        sent = service.outbox.counts()["sent"]
        service.engine.dispose()
    if attempted != count or sent != count:
        raise RuntimeError(f"the worker sent {sent} of {count} mails ({attempted} attempted)")
    return count / elapsed


def run() -> list[tuple[str, float, str]]:
    rates: dict[str, list[float]] = {"reference": [], "rsa": [], "ed25519": []}
    with sink():
        for _ in range(ROUNDS):
            rates["reference"].append(signed_rate(MAILS, None))
            rates["rsa"].append(signed_rate(MAILS, "rsa"))
            rates["ed25519"].append(signed_rate(MAILS, "ed25519"))
    return [
        ("dkim_reference_mails_per_s", round(max(rates["reference"]), 1), "mails/s"),
        ("dkim_rsa_mails_per_s", round(max(rates["rsa"]), 1), "mails/s"),
        ("dkim_ed25519_mails_per_s", round(max(rates["ed25519"]), 1), "mails/s"),
    ]
