"""The cloud's certificates. The TLS front's: the operator's own (`tls: {cert, key, ca}` in the
inventory) or one issued by the cloud's private CA (certs.py) into `tls/` beside the inventory (and
its passwords). Each compute node's, for live migration over TLS (libvirtd's 16514 listener and
QEMU's migration streams): always from the cloud's private CA, whoever's certificate the front uses.

    front = front_material(inventory, inventory_path)      # TlsFront | None
    nodes = migration_material(inventory, inventory_path)  # {"compute1": NodeCert, ...}

Loaded with the inventory (`LoadedInventory.tls`), like its known_hosts, so the plan itself stays
pure: it writes HAProxy's bundle (certificate, CA, key) and the CA into the controller's trust. A
certificate from our CA is issued again when its names change or within 30 days of its expiry, so
every `apply` in that window renews it (the plan shows the new file).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from stackwright.certs import CertStore, san_entries
from stackwright.inventory import Inventory
from stackwright.yamlsource import UserError

FRONT = "front"  # the certificate's file stem in the store
MIGRATION_PREFIX = "libvirt-"  # + the node's name: a compute node's certificate in the store


@dataclass(frozen=True)
class TlsFront:
    ca_pem: str
    cert_pem: str
    key_pem: str
    issued_because: str | None = None  # why our CA issued the certificate in this run (None: kept)

    @property
    def bundle(self) -> str:
        """What HAProxy's `crt` reads: the certificate, its CA, then the key."""
        return "".join(pem.rstrip("\n") + "\n" for pem in (self.cert_pem, self.ca_pem, self.key_pem))

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem.encode())

    @property
    def spki_sha256(self) -> str:
        """base64 SHA-256 of the certificate's public key (what a browser pins)."""
        der = self.certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(hashlib.sha256(der).digest()).decode()


@dataclass(frozen=True)
class NodeCert:
    """A compute node's certificate, key and the CA that issued it: libvirtd serves it on 16514
    and presents it to its peers' libvirtd, QEMU to its peers' QEMU (server and client both)."""

    ca_pem: str
    cert_pem: str
    key_pem: str
    issued_because: str | None = None  # why our CA issued the certificate in this run (None: kept)


def migration_names(inventory: Inventory, node: str) -> list[str]:
    """The names a peer reaches a compute node's libvirtd by: nova's migration URI names its
    management address (live_migration_inbound_addr), then its name."""
    return [str(inventory.nodes[node].management), node]


def migration_material(inventory: Inventory, inventory_path: Path) -> dict[str, NodeCert]:
    """Every compute node's migration certificate from the cloud's CA, issued on first use and
    again when its names change or within 30 days of its expiry (as the front's)."""
    computes = inventory.names_with("compute")
    if not computes:
        return {}
    store = store_for(inventory_path)
    ca_pem = store.authority().cert_pem
    material = {}
    for node in computes:
        names = migration_names(inventory, node)
        # CN libvirt-<node>: libvirtd's tls_allowed_dn_list lets in these and no other certificate
        stem = f"{MIGRATION_PREFIX}{node}"
        pair, why = store.certificate(stem, stem, names, client=True)
        material[node] = NodeCert(ca_pem, pair.cert_pem, pair.key_pem, why)
    return material


def front_names(inventory: Inventory) -> list[str]:
    """The names clients reach the front by: the controller's external address, its name, and with
    `tls.internal` its management address (the internal endpoints)."""
    controller = inventory.controller
    names = [str(controller.external or controller.management), inventory.controller_name]
    if inventory.internal_tls and controller.external is not None:
        names.append(str(controller.management))
    return names


def required_addresses(inventory: Inventory) -> list[str]:
    """The addresses an operator's own front certificate must name: the public one, and the
    management one when the front serves the internal endpoints too."""
    return [name for name in front_names(inventory) if name != inventory.controller_name]


def store_for(inventory_path: Path) -> CertStore:
    return CertStore(inventory_path.parent / "tls", ca_name="stackwright cloud CA")


def ca_path(inventory_path: Path) -> Path:
    """The CA certificate clients verify the front with (clouds.yaml's cacert)."""
    return inventory_path.parent / "tls" / "ca.crt"


def client_ca(inventory: Inventory, inventory_path: Path) -> Path | None:
    """The CA file this machine verifies the front with: the operator's `tls.ca` or our CA's
    certificate; None when TLS is off."""
    tls = inventory.tls
    if not tls.enabled:
        return None
    if tls.ca is not None:
        return inventory_path.parent / tls.ca
    return ca_path(inventory_path)


def front_material(inventory: Inventory, inventory_path: Path) -> TlsFront | None:
    """The front's certificate, CA and key; None when the inventory turns TLS off."""
    tls = inventory.tls
    if not tls.enabled:
        return None
    if tls.cert is not None and tls.key is not None and tls.ca is not None:
        base = inventory_path.parent
        return _operators_own(base / tls.cert, base / tls.key, base / tls.ca, required_addresses(inventory))
    store = store_for(inventory_path)
    names = front_names(inventory)
    pair, why = store.certificate(FRONT, names[0], names)
    return TlsFront(store.authority().cert_pem, pair.cert_pem, pair.key_pem, why)


def _operators_own(cert_path: Path, key_path: Path, ca_path: Path, addresses: list[str]) -> TlsFront:
    texts = []
    for option, path in (("cert", cert_path), ("key", key_path), ("ca", ca_path)):
        try:
            texts.append(path.read_text())
        except OSError as exc:
            raise UserError(f"tls.{option}: cannot read {path} ({exc.strerror}) — fix the path") from None
    cert_pem, key_pem, ca_pem = texts
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        ca = x509.load_pem_x509_certificate(ca_pem.encode())
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise UserError(f"tls: {exc} — give PEM files, the key unencrypted") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, public) != cert.public_key().public_bytes(
        serialization.Encoding.DER, public
    ):
        raise UserError(f"tls.key: {key_path} is not the key of {cert_path} — give the matching pair")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise UserError(f"tls.ca: {ca_path} did not issue {cert_path} — give the CA that signed it") from None
    try:
        sans = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        sans = set()
    missing = [n for n, entry in zip(addresses, san_entries(addresses), strict=True) if entry not in sans]
    if missing:
        raise UserError(
            f"tls.cert: {cert_path} does not name {missing[0]} — issue it with that address in its SANs"
        )
    return TlsFront(ca_pem, cert_pem, key_pem)
