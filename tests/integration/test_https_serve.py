"""HTTPS for the web UI and the API, tried with a real TLS client against a real `doormail serve`:
`--tls` makes a self-signed certificate on first start and prints its fingerprint (the one the
server then presents, and keeps across restarts), `--tls-cert/--tls-key` serve the installer's
own, the session cookie is Secure there, and listening beyond the loopback without TLS is
warned about."""

from __future__ import annotations

import hashlib
import re
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from doormail.web import https
from doormail.web.ui import SESSION_COOKIE
from tests.conftest import (
    ADMIN_PASSWORD,
    RunningService,
    free_port,
    log_in_with_the_form,
    start_serve,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def served() -> Iterator[list[RunningService]]:
    started: list[RunningService] = []
    try:
        yield started
    finally:
        for process in started:
            process.stop()


def presented_fingerprint(port: int) -> str:
    """The SHA-256 fingerprint of the certificate the server presents, as AA:BB:…"""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # read it first; the tests below then verify it
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).hexdigest().upper()


def colons(hex_digest: str) -> str:
    return ":".join(re.findall("..", hex_digest))


def printed_fingerprint(output: Path) -> str:
    found = re.findall(r"SHA-256 fingerprint: ([0-9A-F:]{95})", output.read_text())
    assert found, output.read_text()
    return str(found[-1])


def trusting(certificate: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate))


def test_tls_makes_a_certificate_on_first_start_prints_its_fingerprint_and_keeps_it(
    tmp_path: Path, served: list[RunningService]
) -> None:
    data, output, port = tmp_path / "data", tmp_path / "serve.log", free_port()
    first = start_serve(data, port, options=["--tls"], output=output)
    served.append(first)
    text = output.read_text()
    assert "https://127.0.0.1:" in text
    assert "made a self-signed HTTPS certificate" in text
    fingerprint = printed_fingerprint(output)
    assert colons(presented_fingerprint(port)) == fingerprint
    certificate = data / https.FOLDER / https.CERTIFICATE
    assert (certificate.stat().st_mode & 0o777) == 0o600
    assert ((data / https.FOLDER / https.KEY).stat().st_mode & 0o777) == 0o600
    # A TLS client that trusts exactly this certificate, with host name checking, by name and IP.
    for host in ("127.0.0.1", "localhost"):
        reply = httpx.get(f"https://{host}:{port}/healthz", verify=trusting(certificate))
        assert reply.json() == {"status": "ok"}
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"https://127.0.0.1:{port}/healthz")  # not trusted by the system's CAs
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"http://127.0.0.1:{port}/healthz")  # no plain HTTP on an HTTPS port
    first.stop()

    second = start_serve(data, port, options=["--tls"], output=output)
    served.append(second)
    assert printed_fingerprint(output) == fingerprint
    assert output.read_text().count("made a self-signed") == 1
    assert colons(presented_fingerprint(port)) == fingerprint


def test_the_session_cookie_is_secure_over_https(
    tmp_path: Path, served: list[RunningService]
) -> None:
    port = free_port()
    running = start_serve(tmp_path / "data", port, options=["--tls"])
    served.append(running)
    certificate = tmp_path / "data" / https.FOLDER / https.CERTIFICATE
    with httpx.Client(base_url=running.url, verify=trusting(certificate)) as browser:
        reply = log_in_with_the_form(browser)
        [cookie] = [c for c in reply.headers.get_list("set-cookie") if SESSION_COOKIE in c]
        flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
        assert {"secure", "httponly", "samesite"} <= flags
        assert "samesite=strict" in cookie.lower()
        assert browser.get("/smtp").status_code == 200  # the cookie works over HTTPS


def test_the_installers_certificate_and_key_are_served(
    tmp_path: Path, served: list[RunningService]
) -> None:
    own = https.self_signed(tmp_path / "own", "127.0.0.1")
    port = free_port()
    output = tmp_path / "serve.log"
    options = ["--tls-cert", str(own.certificate), "--tls-key", str(own.key)]
    served.append(start_serve(tmp_path / "data", port, options=options, output=output))
    assert colons(presented_fingerprint(port)) == own.fingerprint == printed_fingerprint(output)
    assert not (tmp_path / "data" / https.FOLDER).exists()
    reply = httpx.get(
        f"https://127.0.0.1:{port}/api/config",
        verify=trusting(own.certificate),
        auth=("admin", ADMIN_PASSWORD),
    )
    assert reply.status_code == 200


def _serve_fails(tmp_path: Path, *options: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "doormail", "serve", "--data", str(tmp_path / "data"), *options],
        capture_output=True,
        text=True,
        timeout=60,
        env={"DOORMAIL_ADMIN_PASSWORD": ADMIN_PASSWORD, "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
    assert completed.returncode == 1
    return completed.stdout + completed.stderr


def test_a_key_that_does_not_belong_to_the_certificate_stops_serve_naming_the_files(
    tmp_path: Path,
) -> None:
    one = https.self_signed(tmp_path / "one", "127.0.0.1")
    other = https.self_signed(tmp_path / "other", "127.0.0.1")
    said = _serve_fails(tmp_path, "--tls-cert", str(one.certificate), "--tls-key", str(other.key))
    assert str(one.certificate) in said and "cannot serve HTTPS" in said
    said = _serve_fails(tmp_path, "--tls-cert", str(one.certificate))
    assert "--tls-cert and --tls-key go together" in said
    said = _serve_fails(tmp_path, "--tls-cert", str(tmp_path / "none.pem"), "--tls-key", "x.pem")
    assert "no such file" in said


def test_listening_beyond_the_loopback_without_tls_is_warned_about(
    tmp_path: Path, served: list[RunningService]
) -> None:
    output, port = tmp_path / "serve.log", free_port()
    served.append(start_serve(tmp_path / "a", port, options=["--listen", f"0.0.0.0:{port}"], output=output))
    served[-1].stop()
    warning = [line for line in output.read_text().splitlines() if "without TLS" in line]
    assert len(warning) == 1 and "WARNING" in warning[0] and "--tls" in warning[0]

    quiet = tmp_path / "quiet.log"
    served.append(start_serve(tmp_path / "b", output=quiet))
    served.append(start_serve(tmp_path / "c", free_port(), options=["--tls"], output=quiet))
    served.append(
        start_serve(tmp_path / "d", port, options=["--listen", f"0.0.0.0:{port}", "--tls"], output=quiet)
    )
    assert "without TLS" not in quiet.read_text()
