"""The private CA and its certificates (pure crypto with `cryptography`, files in a tmp dir)."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509

from stackwright.certs import RENEW_WITHIN, CertStore, issue, make_authority, reason_to_reissue
from stackwright.yamlsource import UserError

AT = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)
NAMES = ["192.168.100.51", "controller", "cloud.example.org"]


def test_store_makes_the_ca_once_and_keeps_keys_private(tmp_path: Path) -> None:
    store = CertStore(tmp_path / "tls")
    first = store.authority(AT)
    assert store.authority(AT) == first
    assert stat.S_IMODE((tmp_path / "tls" / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "tls").stat().st_mode) == 0o700
    ca = first.certificate
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_certificate_has_the_names_and_verifies_with_python_ssl(tmp_path: Path) -> None:
    store = CertStore(tmp_path / "tls")
    pair, why = store.certificate("public", "192.168.100.51", NAMES)  # today: ssl checks the real clock
    assert why == "new"
    sans = pair.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.168.100.51")]
    assert sans.get_values_for_type(x509.DNSName) == ["controller", "cloud.example.org"]
    # a TLS client with only our CA trusts it (the chain and key load as a server would)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    (tmp_path / "both.pem").write_text(pair.cert_pem + pair.key_pem)
    server.load_cert_chain(tmp_path / "both.pem")
    client = ssl.create_default_context(cadata=store.authority().cert_pem)
    for name in ("192.168.100.51", "cloud.example.org"):
        assert _handshake(server, client, name) == "TLSv1.3"
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        _handshake(server, client, "other.example.org")


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, name: str) -> str | None:
    """A real TLS handshake over a socket pair, the client checking the server's certificate
    for `name`."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        accept = threading.Thread(target=lambda: _serve(server, theirs), daemon=True)
        accept.start()
        try:
            with client.wrap_socket(ours, server_hostname=name) as tls:
                return tls.version()
        finally:
            accept.join(5)


def _serve(server: ssl.SSLContext, sock: socket.socket) -> None:
    with contextlib.suppress(ssl.SSLError, OSError), server.wrap_socket(sock, server_side=True) as tls:
        tls.recv(1)


def test_stored_certificate_stands_until_names_ca_or_expiry_change(tmp_path: Path) -> None:
    store = CertStore(tmp_path / "tls")
    pair, _ = store.certificate("public", "x", NAMES, AT)
    assert store.certificate("public", "x", list(reversed(NAMES)), AT) == (pair, None)
    later = pair.certificate.not_valid_after_utc - RENEW_WITHIN + dt.timedelta(hours=1)
    renewed, why = store.certificate("public", "x", NAMES, later)
    assert why is not None and "expires" in why and renewed != pair
    assert (tmp_path / "tls" / "public.crt.prev").read_text() == pair.cert_pem
    moved, why = store.certificate("public", "x", [*NAMES, "10.0.0.1"], later)
    assert why == "its names changed" and moved != renewed


def test_a_certificate_of_another_ca_is_reissued() -> None:
    ours, theirs = make_authority("ours", AT), make_authority("ours", AT)  # same name, other key
    pair = issue(theirs, "x", NAMES, AT)
    assert reason_to_reissue(pair, ours, NAMES, AT) == "not issued by this CA"
    assert reason_to_reissue(issue(ours, "x", NAMES, AT), ours, NAMES, AT) is None


@pytest.mark.parametrize("bad", ["a b", "evil\nname", "-leading", "x" * 300, "a;b", ""])
def test_names_are_allow_listed(bad: str) -> None:
    with pytest.raises(UserError, match="neither an IP address nor a host name"):
        issue(make_authority("ca", AT), "x", [bad], AT)
