"""The passwords file: generated once beside the inventory (0600), never printed.

Shape::

    admin_password: Xy3...
    nova_db_password: ...

Missing values are generated (existing ones are kept); output passes through
`Masker`, which replaces every value with `MASK`.
"""

from __future__ import annotations

import difflib
import secrets as _random
import string
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from stackwright.atomic import atomic_write
from stackwright.yamlsource import UserError, load_located

MASK = "••••"

# name -> what it protects (written as a comment-free YAML map; the order is the file's order)
SECRET_NAMES: dict[str, str] = {
    "admin_password": "Keystone admin user",
    "mariadb_root_password": "MariaDB root",
    "rabbitmq_password": "RabbitMQ 'openstack' user",
    "keystone_db_password": "keystone database user",
    "glance_db_password": "glance database user",
    "placement_db_password": "placement database user",
    "nova_db_password": "nova database user (nova, nova_api, nova_cell0)",
    "neutron_db_password": "neutron database user",
    "glance_password": "glance service user",
    "placement_password": "placement service user",
    "nova_password": "nova service user",
    "neutron_password": "neutron service user",
    "metadata_secret": "shared secret between nova metadata and the neutron metadata agent",
    "libvirt_sasl_password": "libvirt SASL user for live migration",
}

_ALPHABET = string.ascii_letters + string.digits
_MIN_LENGTH = 8


def generate_password(length: int = 32) -> str:
    """Letters and digits only: safe inside URLs, INI files and shell words unquoted."""
    return "".join(_random.choice(_ALPHABET) for _ in range(length))


class Passwords(dict[str, str]):
    """name -> password, remembering the file it came from."""

    def __init__(self, values: Mapping[str, str], path: Path) -> None:
        super().__init__(values)
        self.path = path

    def masker(self) -> Masker:
        return Masker(self.values())


class Masker:
    """Replaces every secret value in a text with MASK (longest first, so no partial leaks)."""

    def __init__(self, values: Iterable[str]) -> None:
        items = {v for v in values if v}
        self._values = sorted(items, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, MASK)
        return text


def default_passwords_path(inventory_path: Path) -> Path:
    return inventory_path.parent / "passwords.yaml"


def load_passwords(path: Path, *, create: bool = True) -> Passwords:
    """Load the passwords file, generating missing values (and the file) when `create`."""
    values: dict[str, str] = {}
    if path.exists():
        values = _parse(path)
    elif not create:
        raise UserError("passwords file not found — run `stackwright plan` once to create it", file=str(path))
    missing = [name for name in SECRET_NAMES if name not in values]
    if missing and create:
        for name in missing:
            values[name] = generate_password()
        write_passwords(path, values)
    elif missing:
        raise UserError(
            f"missing {', '.join(missing)} — add them or let stackwright generate them", file=str(path)
        )
    return Passwords(values=values, path=path)


def _parse(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(
            f"cannot read the passwords file ({exc}) — check it is readable UTF-8", file=str(path)
        ) from None
    source = load_located(text, str(path))
    if source.data is None:
        return {}
    if not isinstance(source.data, dict):
        raise UserError(
            "the passwords file must be a mapping of name: password — fix or delete it",
            file=str(path),
            line=1,
        )
    values: dict[str, str] = {}
    for key, value in source.data.items():
        line = source.line_of((key,))
        if key not in SECRET_NAMES:
            guess = difflib.get_close_matches(str(key), SECRET_NAMES, n=1)
            fix = f"did you mean '{guess[0]}'?" if guess else "remove it"
            raise UserError(f"unknown password name '{key}' — {fix}", file=str(path), line=line)
        if not isinstance(value, str):
            raise UserError(f"{key}: the password must be a string — quote it", file=str(path), line=line)
        if len(value) < _MIN_LENGTH or any(c.isspace() or c in "@:/'\"%#" for c in value):
            raise UserError(
                f"{key}: the password is shorter than {_MIN_LENGTH} characters or holds whitespace or one "
                "of @:/'\"%# — use letters and digits (delete the line to generate one)",
                file=str(path),
                line=line,
            )
        values[str(key)] = value
    return values


def write_passwords(path: Path, values: Mapping[str, str]) -> None:
    """Atomic 0600 write; the previous file is kept as `<name>.prev` (also 0600)."""
    body = yaml.safe_dump(dict(values), sort_keys=False, default_flow_style=False)
    text = "# Generated by stackwright. Keep this file secret (mode 0600).\n" + body
    atomic_write(path, text, mode=0o600, keep_previous=True)
