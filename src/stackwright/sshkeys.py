"""The SSH key nova uses between compute nodes (cold migration, resize: it copies an instance's
directory with ssh and rsync), made from a secret in passwords.yaml, the same on every plan (pure).

    >>> private, public = migration_keypair("Zr8...")
    >>> public
    'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA... nova-migration'
"""

from __future__ import annotations

import base64
import hashlib
import struct

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

COMMENT = "nova-migration"
_MAGIC = b"openssh-key-v1\0"


def migration_keypair(secret: str) -> tuple[str, str]:
    """(the private key in OpenSSH's format, the public key line)."""
    seed = hashlib.sha256(f"stackwright nova migration key\n{secret}".encode()).digest()
    key = Ed25519PrivateKey.from_private_bytes(seed)
    public = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()).decode()
    return _fixed_checkints(pem, seed), f"{public} {COMMENT}"


def _fixed_checkints(pem: str, seed: bytes) -> str:
    """cryptography writes the two 32-bit "checkint" words of the private section at random on
    every call (they let a reader tell a wrong passphrase; without a cipher they carry nothing).
    Set from the seed, the file is the same on every plan, so a re-apply changes nothing."""
    lines = pem.strip().splitlines()
    blob = bytearray(base64.b64decode("".join(lines[1:-1])))
    assert blob.startswith(_MAGIC)
    offset = len(_MAGIC)
    for _ in range(3):  # cipher name, kdf name, kdf options
        offset += 4 + struct.unpack(">I", blob[offset : offset + 4])[0]
    offset += 4  # number of keys (1)
    offset += 4 + struct.unpack(">I", blob[offset : offset + 4])[0]  # the public key
    offset += 4  # the private section's length
    check = hashlib.sha256(b"checkint" + seed).digest()[:4]
    blob[offset : offset + 8] = check + check
    text = base64.b64encode(bytes(blob)).decode()
    body = "\n".join(text[i : i + 70] for i in range(0, len(text), 70))
    return f"{lines[0]}\n{body}\n{lines[-1]}\n"
