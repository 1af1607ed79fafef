"""The cloud's private certificate authority and the certificates it issues, kept on the
operator's machine beside passwords.yaml (like the passwords: made once, read by every plan, so a
re-apply writes the same files), with the `cryptography` library rather than openssl command lines.

    store = CertStore(inventory_dir / "tls")
    ca = store.authority()                                   # made on first use (0600 key)
    pair = store.certificate("public", "192.168.100.51", ["192.168.100.51", "controller"])

A certificate is issued again when its names (SANs) changed, when the CA changed, or within
RENEW_WITHIN of its expiry (`apply` renews; `plan` shows the new file).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stackwright.atomic import atomic_write
from stackwright.yamlsource import UserError

CA_DAYS = 3650
CERT_DAYS = 397  # what public CAs may issue at most; private or not, a year is what clients expect
RENEW_WITHIN = dt.timedelta(days=30)
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,79}")  # a certificate's file stem ("libvirt-" + a node name)
_DNS = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


@dataclass(frozen=True)
class KeyPair:
    key_pem: str
    cert_pem: str

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem.encode())


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def san_entries(names: Sequence[str]) -> list[x509.GeneralName]:
    """IP addresses as IP SANs, host names as DNS SANs; anything else is refused."""
    entries: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
            continue
        except ValueError:
            pass
        if not _DNS.fullmatch(name):
            raise UserError(f"{name!r} is neither an IP address nor a host name — fix it in the inventory")
        entries.append(x509.DNSName(name.lower()))
    return entries


def make_authority(common_name: str, at: dt.datetime) -> KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(at - dt.timedelta(minutes=5))
        .not_valid_after(at + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _pair(key, cert)


def issue(
    ca: KeyPair, common_name: str, names: Sequence[str], at: dt.datetime, *, client: bool = False
) -> KeyPair:
    """A leaf certificate for `names` (server auth; also client auth when `client`: libvirt's
    migration peers present theirs to each other)."""
    ca_key = serialization.load_pem_private_key(ca.key_pem.encode(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = ca.certificate
    key = ec.generate_private_key(ec.SECP256R1())
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, *([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(at - dt.timedelta(minutes=5))
        .not_valid_after(at + dt.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(san_entries(names)), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return _pair(key, cert)


def reason_to_reissue(pair: KeyPair, ca: KeyPair, names: Sequence[str], at: dt.datetime) -> str | None:
    """Why `pair` must be issued again (None: it is fine as it is)."""
    cert = pair.certificate
    try:
        cert.verify_directly_issued_by(ca.certificate)
    except (ValueError, TypeError, InvalidSignature):
        return "not issued by this CA"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    if set(sans) != set(san_entries(names)):
        return "its names changed"
    if cert.not_valid_after_utc - at <= RENEW_WITHIN:
        return f"expires {cert.not_valid_after_utc:%Y-%m-%d} (within {RENEW_WITHIN.days} days)"
    return None


def _pair(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> KeyPair:
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return KeyPair(key_pem, cert.public_bytes(serialization.Encoding.PEM).decode())


class CertStore:
    """`<dir>/ca.{key,crt}` and `<dir>/<name>.{key,crt}`: keys 0600, certificates 0644, the
    previous version of each kept as `.prev` (atomic writes)."""

    def __init__(self, directory: Path, ca_name: str = "stackwright cloud CA") -> None:
        self.directory = directory
        self.ca_name = ca_name

    def authority(self, at: dt.datetime | None = None) -> KeyPair:
        ca = self._read("ca")
        at = at or now()
        if ca is None or ca.certificate.not_valid_after_utc - at <= RENEW_WITHIN:
            ca = make_authority(self.ca_name, at)
            self._write("ca", ca)
        return ca

    def certificate(
        self,
        name: str,
        common_name: str,
        names: Sequence[str],
        at: dt.datetime | None = None,
        *,
        client: bool = False,
    ) -> tuple[KeyPair, str | None]:
        """(the certificate for `names`, why it was issued now — None when the stored one stands)."""
        if not _NAME.fullmatch(name):
            raise ValueError(f"certificate name {name!r}")
        at = at or now()
        ca = self.authority(at)
        pair = self._read(name)
        why = "new" if pair is None else reason_to_reissue(pair, ca, names, at)
        if pair is None or why is not None:
            pair = issue(ca, common_name, names, at, client=client)
            self._write(name, pair)
        return pair, why

    def _read(self, name: str) -> KeyPair | None:
        key, crt = self.directory / f"{name}.key", self.directory / f"{name}.crt"
        if not (key.exists() and crt.exists()):
            return None
        pair = KeyPair(key.read_text(), crt.read_text())
        try:
            x509.load_pem_x509_certificate(pair.cert_pem.encode())
        except ValueError as exc:
            raise UserError(
                f"{crt} is not a PEM certificate ({exc}) — restore it, or remove it and its key"
            ) from None
        return pair

    def _write(self, name: str, pair: KeyPair) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(self.directory / f"{name}.key", pair.key_pem, mode=0o600, keep_previous=True)
        atomic_write(self.directory / f"{name}.crt", pair.cert_pem, mode=0o644, keep_previous=True)
