"""HTTPS for the web UI and the API (`doormail serve --tls`): the server certificate, made once
in the data folder (self-signed, for the names and addresses doormail answers on) or given as
the installer's own files, checked before the server starts; and whether a listen address stays
on this machine (anything else should use it). The X.509 library is loaded only when HTTPS is
asked for."""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from doormail.store.datafolder import FILE_MODE

if TYPE_CHECKING:
    from cryptography import x509

# Inside the data folder: the certificate made by `--tls` and its key.
FOLDER = "https"
CERTIFICATE = "certificate.pem"
KEY = "key.pem"


class HttpsError(Exception):
    """Certificate or key files that cannot serve HTTPS, with what to do about it."""


@dataclass(frozen=True)
class ServerCertificate:
    """The files uvicorn is given, the certificate's SHA-256 fingerprint (AA:BB:…) and whether
    it was made just now."""

    certificate: Path
    key: Path
    fingerprint: str
    made: bool = False


def is_loopback(host: str) -> bool:
    """Whether listening on `host` keeps the service on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def self_signed(data_dir: Path, listen_host: str) -> ServerCertificate:
    """The certificate `--tls` serves: the one in the data folder, made on first use for this
    machine's names, the loopback addresses and `listen_host`."""
    folder = data_dir / FOLDER
    certificate, key = folder / CERTIFICATE, folder / KEY
    made = False
    if not certificate.exists():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        certificate_pem, key_pem = _make(listen_host)
        _write_private(key, key_pem)
        _write_private(certificate, certificate_pem)
        made = True
    return ServerCertificate(certificate, key, _checked(certificate, key), made)


def given(certificate: Path, key: Path) -> ServerCertificate:
    """The installer's own certificate (chain) and key, checked to belong together."""
    return ServerCertificate(certificate, key, _checked(certificate, key))


def _checked(certificate: Path, key: Path) -> str:
    """The certificate's fingerprint once the pair has been loaded the way the server will."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(certificate, key)
    except FileNotFoundError as error:
        raise HttpsError(f"{error.filename or certificate}: no such file") from None
    except (ssl.SSLError, OSError) as error:
        raise HttpsError(
            f"{certificate} and {key} cannot serve HTTPS ({error}); give a PEM certificate "
            "(its chain after it) and its unencrypted private key"
        ) from None
    from cryptography import x509

    from doormail.certificates.pem import fingerprint

    return fingerprint(x509.load_pem_x509_certificate(certificate.read_bytes()))


def _names(listen_host: str) -> list[x509.GeneralName]:
    from cryptography import x509

    dns = {"localhost", socket.gethostname(), socket.getfqdn()}
    addresses = {"127.0.0.1", "::1"}
    if listen_host and not is_loopback(listen_host):
        try:
            ip = ipaddress.ip_address(listen_host)
        except ValueError:
            dns.add(listen_host)
        else:
            if not ip.is_unspecified:
                addresses.add(listen_host)
    found: list[x509.GeneralName] = [x509.DNSName(name) for name in sorted(dns) if name]
    found += [x509.IPAddress(ipaddress.ip_address(a)) for a in sorted(addresses)]
    return found


def _make(listen_host: str) -> tuple[bytes, bytes]:
    from doormail.certificates.pem import self_signed

    certificate_pem, key_pem = self_signed(
        f"doormail on {socket.gethostname()}", _names(listen_host)
    )
    return certificate_pem.encode(), key_pem.encode()


def _write_private(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    os.replace(temporary, path)
