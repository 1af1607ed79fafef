"""The passwords file: generated once beside the inventory (0600), never printed.

Shape::

    admin_password: Xy3...
    nova_db_password: ...

Missing values are generated (existing ones are kept); a hand-set value must be 8-64 of letters,
digits and `-._~` (allowlists.PASSWORD). Output passes through `Masker`, which replaces every
value ever seen — this file's, the previous file's (`passwords.yaml.prev`) and old values read
from hosts — with `MASK`.
"""

from __future__ import annotations

import base64
import difflib
import os
import re
import secrets as _random
import shlex
import stat
import string
import struct
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import quote

import yaml

from stackwright.allowlists import CEPHX_KEY, PASSWORD, shown
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
    "horizon_secret_key": "Horizon's Django SECRET_KEY (signs sessions and CSRF tokens)",
    "memcache_secret_key": "encrypts and authenticates the services' token cache in memcached",
    "nova_ssh_key": "seed of nova's SSH key between compute nodes (resize, cold migration)",
    "cinder_db_password": "cinder database user",
    "cinder_password": "cinder service user",
    "ceph_mon_key": "cephx key the Ceph monitors share (mon.); the cluster's fsid follows from it",
    "ceph_admin_key": "cephx key of client.admin (root on the storage nodes)",
    "ceph_cinder_key": "cephx key of client.cinder (cinder-volume; qemu and nova through libvirt's secret)",
    "ceph_glance_key": "cephx key of client.glance (the image store)",
}

# Secrets in Ceph's own key format instead of a password (`ceph-authtool --gen-print-key`'s).
CEPHX_KEYS = frozenset({"ceph_mon_key", "ceph_admin_key", "ceph_cinder_key", "ceph_glance_key"})

# Names an older stackwright wrote that nothing reads now: accepted in the file (an existing cloud's
# passwords.yaml keeps working) and masked like the others, never written into a plan.
RETIRED_NAMES: dict[str, str] = {
    "libvirt_sasl_password": "live migration authenticates with TLS certificates instead of SASL",
}

# Secrets only hashed into key material (never written as text into a file), so any value is inert.
KEY_SEEDS = frozenset({"nova_ssh_key"})

_ALPHABET = string.ascii_letters + string.digits


def generate_password(length: int = 32) -> str:
    """Letters and digits only: safe inside URLs, INI files and shell words unquoted."""
    return "".join(_random.choice(_ALPHABET) for _ in range(length))


def generate_cephx_key() -> str:
    """A cephx secret as Ceph stores it: base64 of (type 1 = AES, creation time, length 16) and 16
    random bytes. Built here because nothing on the operator's machine has Ceph's tools, and no
    Python library makes these keys."""
    header = struct.pack("<HIIH", 1, int(time.time()), 0, 16)
    return base64.b64encode(header + _random.token_bytes(16)).decode("ascii")


def generate_secret(name: str) -> str:
    return generate_cephx_key() if name in CEPHX_KEYS else generate_password()


class Passwords(dict[str, str]):
    """name -> password, remembering the file it came from, the values of the file before it
    (`history`, masked in output too) and what loading it had to repair (`warnings`)."""

    def __init__(
        self,
        values: Mapping[str, str],
        path: Path,
        *,
        history: Iterable[str] = (),
        warnings: Iterable[str] = (),
    ) -> None:
        super().__init__(values)
        self.path = path
        self.history = tuple(history)
        self.warnings = tuple(warnings)

    def masker(self) -> Masker:
        return Masker([*self.values(), *self.history])


class Masker:
    """Replaces every secret value in a text with MASK (longest first, so no partial leaks), also
    as the sinks write it (URL-quoted, `$$`, SQL- and shell-quoted). `learn` adds values found
    later (an old password read from a host)."""

    def __init__(self, values: Iterable[str]) -> None:
        self._values: list[str] = []
        self.learn(values)

    def learn(self, values: Iterable[str]) -> None:
        forms = set(self._values)
        for value in values:
            if value:
                forms |= _written_forms(value)
        self._values = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, MASK)
        # Private keys (the TLS front's) are no passwords file's values: masked wherever they show.
        return _PRIVATE_KEY.sub(lambda m: f"{m.group(1)}\n{MASK}\n{m.group(2)}", text)


_PRIVATE_KEY = re.compile(r"(-----BEGIN [A-Z ]*PRIVATE KEY-----)[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----)")


def _written_forms(value: str) -> set[str]:
    sql = value.replace("\\", "\\\\").replace("'", "\\'")
    return {value, quote(value, safe=""), value.replace("$", "$$"), sql, shlex.quote(value)}


# Lines that assign a secret whole: `admin_password = X`, `OS_BOOTSTRAP_PASSWORD='X'`, `connection = URL`.
_SECRET_KEY = re.compile(
    r"(?i)\s*(?:[\w.-]*(?:password|pass|secret)|transport_url|connection)\s*[=:]\s*(\S.*?)\s*"
)


def may_replace(old_lines: list[str], new_lines: list[str], secrets: list[str]) -> bool:
    """Whether any old line starts as a secret-holding new line does: only such a line can yield
    a value in replaced_values. Without one (a package's default file, its keys commented out) the
    alignment is skipped — on a fresh host it was most of the engine's CPU."""
    prefixes = {line[: line.find(s)] for line in new_lines for s in secrets if s in line}
    return any(line.startswith(prefix) for line in old_lines for prefix in prefixes)


def replaced_values(old_lines: list[str], new_lines: list[str], secrets: list[str]) -> set[str]:
    """What stands in each old line where a secret (longest first) stands in the new line that
    replaces it, the two files aligned by difflib."""
    values: set[str] = set()
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "replace":
            continue
        for old_line, new_line in zip(old_lines[i1:i2], new_lines[j1:j2], strict=False):
            for secret in secrets:
                start = new_line.find(secret)
                if start < 0:
                    continue
                prefix, suffix = new_line[:start], new_line[start + len(secret) :]
                if old_line.startswith(prefix) and old_line.endswith(suffix):
                    values.add(old_line[len(prefix) : len(old_line) - len(suffix)])
                break
    return values


def old_secret_values(old: str, new: str, known: Iterable[str]) -> set[str]:
    """Values a host's copy of a secret file holds that the new content replaces: so a rotated or
    hand-set password never shows, even though no passwords file knows it any more.

    Each line of `new` that holds a known secret is matched with the old line in the same place of
    the file; what stands in the old line where the secret stands in the new one is the old value.
    Lines that assign a password-like key (`password = ...`) count whole."""
    secrets = sorted({k for k in known if k}, key=len, reverse=True)
    old_lines, new_lines = old.splitlines(), new.splitlines()
    values: set[str] = set()
    if may_replace(old_lines, new_lines, secrets):
        values = replaced_values(old_lines, new_lines, secrets)
    for line in old_lines:
        match = _SECRET_KEY.fullmatch(line)
        if match:
            values.add(match.group(1).strip("'\""))
    if len(old_lines) == 1 and len(new_lines) == 1 and new_lines[0] in secrets:
        values.add(old_lines[0])  # a file that is just the password
    return {v for v in values if len(v) >= 4}


def default_passwords_path(inventory_path: Path) -> Path:
    return inventory_path.parent / "passwords.yaml"


def load_passwords(path: Path, *, create: bool = True) -> Passwords:
    """Load the passwords file, generating missing values (and the file) when `create`.

    The file and its `.prev` are made private (0600) first if group or others could read them."""
    values: dict[str, str] = {}
    retired: dict[str, str] = {}
    warnings = [w for p in (path, previous_path(path)) if (w := make_private(p))]
    if path.exists():
        values, retired = _parse(path)
    elif not create:
        raise UserError("passwords file not found — run `stackwright plan` once to create it", file=str(path))
    missing = [name for name in SECRET_NAMES if name not in values]
    if missing and create:
        for name in missing:
            values[name] = generate_secret(name)
        write_passwords(path, values)
    elif missing:
        raise UserError(
            f"missing {', '.join(missing)} — add them or let stackwright generate them", file=str(path)
        )
    history = [*_values_in(previous_path(path)), *retired.values()]
    return Passwords(values=values, path=path, history=history, warnings=warnings)


def previous_path(path: Path) -> Path:
    return path.with_name(path.name + ".prev")


def make_private(path: Path) -> str | None:
    """chmod 0600 a secrets file group or others can read; returns the warning to show, if any."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None
    if not mode & 0o077:
        return None
    os.chmod(path, 0o600)
    return f"{path} was readable by group or others (mode {mode:04o}) — set it to 0600; keep it that way"


def _values_in(path: Path) -> list[str]:
    """The string values of an older passwords file, for masking only: whatever it holds."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    return [v for v in data.values() if isinstance(v, str)] if isinstance(data, dict) else []


_CEPHX_RULE = (
    CEPHX_KEY,
    "not a cephx key (40 characters of base64 starting AQ, as `ceph-authtool --gen-print-key` prints) "
    "— fix it",
)
_PASSWORD_RULE = (
    PASSWORD,
    "a password must be 8-64 of letters, digits and -._~ (the same text in URLs, INI files, SQL and "
    "shell) — change it",
)


def _parse(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(the passwords, the retired names' values)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(
            f"cannot read the passwords file ({exc}) — check it is readable UTF-8", file=str(path)
        ) from None
    source = load_located(text, str(path))
    if source.data is None:
        return {}, {}
    if not isinstance(source.data, dict):
        raise UserError(
            "the passwords file must be a mapping of name: password — fix or delete it",
            file=str(path),
            line=1,
        )
    values: dict[str, str] = {}
    retired: dict[str, str] = {}
    for key, value in source.data.items():
        line = source.line_of((key,))
        if key in RETIRED_NAMES:
            if isinstance(value, str):
                retired[str(key)] = value
            continue
        if key not in SECRET_NAMES:
            guess = difflib.get_close_matches(str(key), SECRET_NAMES, n=1)
            fix = f"did you mean '{guess[0]}'?" if guess else "remove it"
            raise UserError(f"unknown password name {shown(key)} — {fix}", file=str(path), line=line)
        if not isinstance(value, str):
            raise UserError(f"{key}: the password must be a string — quote it", file=str(path), line=line)
        pattern, rule = _CEPHX_RULE if key in CEPHX_KEYS else _PASSWORD_RULE
        if not pattern.fullmatch(value):
            raise UserError(f"{key}: {rule}, or delete the line to generate one", file=str(path), line=line)
        values[str(key)] = value
    return values, retired


def write_passwords(path: Path, values: Mapping[str, str]) -> None:
    """Atomic 0600 write; the previous file is kept as `<name>.prev` (also 0600)."""
    body = yaml.safe_dump(dict(values), sort_keys=False, default_flow_style=False)
    text = "# Generated by stackwright. Keep this file secret (mode 0600).\n" + body
    atomic_write(path, text, mode=0o600, keep_previous=True)
    make_private(previous_path(path))
