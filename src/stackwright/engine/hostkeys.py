"""Host keys: the key each host must present, kept in a `known_hosts` file beside the inventory.

    <inventory dir>/known_hosts          OpenSSH's format, under the address the engine connects to
    10.10.10.53 ssh-ed25519 AAAAC3Nz...  ("[10.10.10.53]:2222 ..." for another port)

Nothing is trusted on first use: a host without an entry is refused until `stackwright trust FILE`
showed its fingerprint and recorded it (or, once, `--accept-new-host-keys`); a host whose key
changed is refused naming both fingerprints. `lab up` records its hosts' keys itself, read from
their roots (it made them), and `lab down` removes them.
"""

from __future__ import annotations

import base64
import hashlib
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from stackwright.atomic import atomic_write

KNOWN_HOSTS = "known_hosts"
_LABELS = {"ssh-ed25519": "ED25519", "ssh-rsa": "RSA", "ssh-dss": "DSA"}

# (key type, base64 blob), e.g. ("ssh-ed25519", "AAAAC3Nz...")
KeyLine = tuple[str, str]
Connect = Callable[[tuple[str, int], float], socket.socket]
CONNECT: Connect = socket.create_connection  # how key scans reach a host (tests: a socketpair)


def known_hosts_path(inventory_path: Path) -> Path:
    return inventory_path.parent / KNOWN_HOSTS


def key_name(address: str, port: int) -> str:
    """The name OpenSSH and paramiko look a host's keys up by."""
    return address if port == 22 else f"[{address}]:{port}"


def fingerprint(blob: str) -> str:
    """`SHA256:...` of a key, as `ssh-keygen -l` prints it."""
    digest = hashlib.sha256(base64.b64decode(blob)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def describe(key: KeyLine) -> str:
    """ "ED25519 SHA256:..." (the key type as ssh-keygen names it)."""
    kind, blob = key
    label = _LABELS.get(kind, "ECDSA" if kind.startswith("ecdsa-") else kind)
    return f"{label} {fingerprint(blob)}"


def _names_match(field: str, name: str) -> bool:
    from paramiko.hostkeys import HostKeys

    for entry in field.split(","):
        if entry == name or (entry.startswith("|1|") and HostKeys.hash_host(name, entry) == entry):
            return True
    return False


def _entries(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


def lookup(path: Path, name: str) -> list[KeyLine]:
    """The keys recorded for `name` (in file order; marker lines such as @revoked are skipped)."""
    keys = []
    for line in _entries(path):
        fields = line.split()
        if len(fields) >= 3 and not line.startswith(("#", "@")) and _names_match(fields[0], name):
            keys.append((fields[1], fields[2]))
    return keys


def record(path: Path, keys: Mapping[str, Sequence[KeyLine]], *, keep_previous: bool = False) -> None:
    """Make `keys[name]` the only keys recorded for each name (other lines stay as they are)."""
    kept = [line for line in _entries(path) if not _mentions(line, keys)]
    added = [f"{name} {kind} {blob}" for name, lines in keys.items() for kind, blob in lines]
    text = "".join(f"{line}\n" for line in [*kept, *added])
    atomic_write(path, text, mode=0o644, keep_previous=keep_previous)


def remove(path: Path, names: Iterable[str]) -> None:
    """Forget every key recorded for `names` (`lab down`); a file left empty goes too."""
    names = list(names)
    lines = _entries(path)
    kept = [line for line in lines if not _mentions(line, names)]
    if not kept:
        path.unlink(missing_ok=True)
    elif kept != lines:
        atomic_write(path, "".join(f"{line}\n" for line in kept), mode=0o644)


def _mentions(line: str, names: Iterable[str]) -> bool:
    fields = line.split()
    if len(fields) < 3 or line.startswith("#"):
        return False
    host_field = fields[1] if line.startswith("@") else fields[0]
    return any(_names_match(host_field, name) for name in names)


def scan(
    address: str,
    port: int,
    *,
    timeout: float = 10.0,
    prefer: str | None = None,
    connect: Connect | None = None,
) -> KeyLine:
    """The key a host presents (no login: the key exchange only). `prefer` asks for that key type
    first, as paramiko does when it knows one."""
    import paramiko

    sock = (connect or CONNECT)((address, port), timeout)
    transport = paramiko.Transport(sock)
    try:
        if prefer:
            options = transport.get_security_options()
            options.key_types = [prefer, *(k for k in options.key_types if k != prefer)]
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
        return key.get_name(), key.get_base64()
    finally:
        transport.close()
        sock.close()


@dataclass
class HostTrust:
    """How this run trusts host keys: the known_hosts file, whether unknown hosts may be accepted
    (recorded) once, the command that records keys (for messages), and what was accepted."""

    known_hosts: Path
    trust_command: str
    accept_new: bool = False
    accepted: list[str] = field(default_factory=list)

    @classmethod
    def beside(cls, inventory_path: Path, *, accept_new: bool = False) -> HostTrust:
        return cls(known_hosts_path(inventory_path), f"stackwright trust {inventory_path}", accept_new)

    def unknown(self, name: str, address: str) -> str:
        return (
            f"no known host key for {name} ({address}) — run `{self.trust_command}` to check and record "
            "its fingerprint, or pass --accept-new-host-keys once"
        )

    def changed(self, name: str, address: str, known: KeyLine, offered: KeyLine) -> str:
        return (
            f"host key of {name} ({address}) changed: {self.known_hosts} has {describe(known)}, the host "
            f"offers {describe(offered)} — if {name} was reinstalled, compare with "
            f"`ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` on its console, then run "
            f"`{self.trust_command} --limit {name}`; otherwise someone may be intercepting the connection"
        )

    def admit(self, targets: Mapping[str, tuple[str, int]], connect: Connect | None = None) -> dict[str, str]:
        """Before connecting: hosts without a recorded key are refused ({name: why}), or with
        `accept_new` scanned and recorded (noted in `accepted`)."""
        refused: dict[str, str] = {}
        new: dict[str, list[KeyLine]] = {}
        for name, (address, port) in targets.items():
            if lookup(self.known_hosts, key_name(address, port)):
                continue
            if not self.accept_new:
                refused[name] = self.unknown(name, address)
                continue
            try:
                key = scan(address, port, connect=connect)
            except Exception as exc:  # paramiko/socket errors: it is unreachable, say why
                refused[name] = f"{name} ({address}): no SSH key exchange ({type(exc).__name__}: {exc})"[:300]
                continue
            new[key_name(address, port)] = [key]
            self.accepted.append(f"accepted the new host key of {name} ({address}): {describe(key)}")
        if new:
            record(self.known_hosts, new)
        return refused

    def diagnose(self, name: str, address: str, port: int, connect: Connect | None = None) -> str | None:
        """After a host key error: the one-line reason (both fingerprints when the key changed)."""
        known = lookup(self.known_hosts, key_name(address, port))
        if not known:
            return self.unknown(name, address)
        try:
            offered = scan(address, port, prefer=known[0][0], connect=connect)
        except Exception:
            return None
        if offered in known:
            return None
        same_type = next((k for k in known if k[0] == offered[0]), known[0])
        return self.changed(name, address, same_type, offered)


@dataclass(frozen=True)
class Sighting:
    """What `stackwright trust` saw of one host: the key it offers and what known_hosts holds."""

    name: str
    address: str
    port: int
    offered: KeyLine | None
    known: tuple[KeyLine, ...]
    error: str = ""

    @property
    def status(self) -> str:
        """new | recorded | CHANGED | unreachable"""
        if self.offered is None:
            return "unreachable"
        if not self.known:
            return "new"
        return "recorded" if self.offered in self.known else "CHANGED"


def survey(
    path: Path, targets: Mapping[str, tuple[str, int]], connect: Connect | None = None
) -> list[Sighting]:
    """Every host's key, scanned in parallel (threads: a key exchange each, no login)."""
    from concurrent.futures import ThreadPoolExecutor

    def look(name: str) -> Sighting:
        address, port = targets[name]
        known = tuple(lookup(path, key_name(address, port)))
        prefer = known[0][0] if known else None
        try:
            return Sighting(name, address, port, scan(address, port, prefer=prefer, connect=connect), known)
        except Exception as exc:  # paramiko/socket errors: reported per host
            return Sighting(name, address, port, None, known, f"{type(exc).__name__}: {exc}"[:200])

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(look, targets))


def record_sightings(path: Path, sightings: Iterable[Sighting]) -> int:
    """Record the offered key of every new or changed host; returns how many."""
    keys = {
        key_name(s.address, s.port): [s.offered]
        for s in sightings
        if s.offered is not None and s.status in ("new", "CHANGED")
    }
    if keys:
        record(path, keys, keep_previous=True)  # the keys trusted before, should they be wanted back
    return len(keys)
