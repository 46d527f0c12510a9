"""DKIM's cost on delivery: the worker draining the same queue into the lab's `smtp-sink` with
signing off (`dkim_reference_mails_per_s`, measured in the same run) and on with an RSA 2048
key and with an Ed25519 key (`dkim_rsa_mails_per_s`, `dkim_ed25519_mails_per_s`). Each mail is
signed right before it is sent, as in service."""

from __future__ import annotations

from bench.delivery import MAILS, sink, worker_rate
from doormail import dkimkey

ROUNDS = 2


def signed_rate(count: int, algorithm: dkimkey.Algorithm | None) -> float:
    if algorithm is None:
        return worker_rate(count)
    dkim = {
        "enabled": True,
        "domain": "example.org",
        "selector": "bench",
        "private_key": dkimkey.generate(algorithm),
    }
    return worker_rate(count, {"smtp": {"dkim": dkim}})


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
