"""The API under a fuzzer: schemathesis reads doormail's own OpenAPI document from a running
`doormail serve` and sends, with the admin's credentials, requests generated from it to every
route — valid ones and ones that break the document's rules. No reply may be a server error, and
every reply must be what the document says (status code, content type, headers, body shape).

Whatever names a server (SMTP, a camera, an OAuth2 token URL, an MQTT broker) is pointed at the
loopback address before it is sent, so that the service the fuzzer configures only ever connects
to this machine. `make fuzz` runs the same with more cases per route."""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import HypothesisWarning, Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import ADMIN_PASSWORD, RunningService, start_serve

# Generated cases per route and kind (valid, invalid): make fuzz raises it.
CASES = int(os.environ.get("DOORMAIL_FUZZ_CASES", "40"))
# The same cases each run unless asked otherwise, so that a failure in CI can be run again.
RANDOM = os.environ.get("DOORMAIL_FUZZ_RANDOM") == "1"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
LOOPBACK = "127.0.0.1"
# Settings and Apply & Test fields that name a server doormail would connect to.
HOST_KEYS = {"server"}
URL_KEYS = {"url", "token_url"}
# From this size on, the HTTP server (h11) may refuse a request line and headers.
HEAD_LIMIT = 16 * 1024


def to_loopback(value: Any) -> Any:
    """`value` with every server it names replaced by the loopback address (a fuzzer must not
    make the service connect anywhere else)."""
    if isinstance(value, dict):
        return {key: _loopback_field(key, item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_loopback(item) for item in value]
    return value


def _loopback_field(key: str, value: Any) -> Any:
    if isinstance(value, str) and key in HOST_KEYS:
        return LOOPBACK
    if isinstance(value, str) and key in URL_KEYS and value:
        scheme = urlsplit(value).scheme if "://" in value else ""
        return f"{scheme or 'http'}://{LOOPBACK}:9/"
    return to_loopback(value)


def loopback_case(case: Case) -> Case:
    if isinstance(case.body, dict | list):
        case.body = to_loopback(case.body)
    return case


@dataclass
class Tally:
    """What the fuzzer did and found."""

    cases: int = 0
    routes: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    slowest: float = 0.0
    heads_refused: int = 0


def head_too_long(case: Case) -> bool:
    return len(urlencode(case.query or {}, doseq=True)) > HEAD_LIMIT


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    running = start_serve(tmp_path_factory.mktemp("fuzz") / "data")
    try:
        yield running
    finally:
        running.stop()


def fuzz_operation(
    operation: Any, mode: GenerationMode, session: requests.Session, url: str, tally: Tally
) -> None:
    label = operation.label

    @given(case=operation.as_strategy(generation_mode=mode).map(loopback_case))
    @settings(
        max_examples=CASES,
        deadline=None,
        database=None,
        derandomize=not RANDOM,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    def run(case: Case) -> None:
        started = time.monotonic()
        tally.cases += 1
        tally.routes.add(label)
        try:
            case.call_and_validate(base_url=url, session=session, checks=CHECKS, timeout=60)
        except requests.RequestException:
            if not head_too_long(case):
                raise
            # The HTTP server refuses a request line beyond what it reads (h11 buffers 16 KiB of
            # an unfinished head) and may close before the client has sent it all: the client
            # then sees a reset rather than the 400.
            tally.heads_refused += 1
        except (Exception, BaseExceptionGroup) as failure:
            request = f"{case.method} {case.formatted_path} {str(case.body)[:200]!r}"
            said = f"{type(failure).__module__}.{type(failure).__name__}: {str(failure)[:1500]}"
            said += f" (query of {len(urlencode(case.query or {}, doseq=True))} bytes)"
            tally.failures.append(f"{label} ({mode.value}): {request[:300]}\n{said}")
        tally.slowest = max(tally.slowest, time.monotonic() - started)

    # A route without parameters or body has no invalid request to make.
    with contextlib.suppress(Unsatisfiable):
        run()


@pytest.mark.integration
def test_the_fuzzer_finds_no_server_error_and_no_reply_outside_the_document(
    served: RunningService, tmp_path: Path
) -> None:
    session = requests.Session()
    session.auth = ("admin", ADMIN_PASSWORD)
    schema = schemathesis.openapi.from_url(
        f"{served.url}/openapi.json", auth=("admin", ADMIN_PASSWORD)
    )
    tally = Tally()
    operations = [result.ok() for result in schema.get_all_operations()]
    started = time.monotonic()
    with warnings.catch_warnings():
        # Hypothesis warns about printing a large generated body; that is no failure.
        warnings.simplefilter("ignore", HypothesisWarning)
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                fuzz_operation(operation, mode, session, served.url, tally)
    took = time.monotonic() - started
    print(
        f"\nfuzz_cases {tally.cases}\nfuzz_routes {len(tally.routes)}\nfuzz_seconds {took:.0f}"
        f"\nfuzz_slowest_reply_s {tally.slowest:.2f}\nfuzz_failures {len(tally.failures)}"
        f"\nfuzz_heads_refused {tally.heads_refused}"
    )
    assert not tally.failures, "\n\n".join(tally.failures[:10])[:20000]
    assert len(tally.routes) == len(operations) >= 30
    assert tally.cases >= 1000
    assert served.process.poll() is None
