"""Strict SSH host keys (issue 15, "Why" 6): nothing is trusted on first use; a host without a
recorded key is refused before any connection, a changed key is refused naming both fingerprints.

Key exchanges run for real (paramiko on both ends) over a socketpair: no network, no port."""

from __future__ import annotations

import contextlib
import io
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from stackwright.engine.hostkeys import (
    HostTrust,
    describe,
    fingerprint,
    key_name,
    lookup,
    record,
    record_sightings,
    remove,
    scan,
    survey,
)
from stackwright.engine.remote import connect_reachable, ssh_target
from stackwright.inventory import load_inventory

# TEST-NET-1 addresses: even a bug that connected would reach nothing.
INVENTORY = """\
release: epoxy
networks:
  management: {cidr: 192.0.2.0/24}
  data: {cidr: 198.51.100.0/24}
  external: {cidr: 203.0.113.0/24}
nodes:
  controller: {roles: [controller], management: 192.0.2.51, external: 203.0.113.51}
  network: {roles: [network], management: 192.0.2.52, data: 198.51.100.52, external: 203.0.113.52}
  compute1: {roles: [compute], management: 192.0.2.53, data: 198.51.100.53, ssh: {port: 2222}}
"""


def host_key() -> paramiko.PKey:
    return paramiko.Ed25519Key.from_private_key(_generated())


def _generated() -> io.StringIO:

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    return io.StringIO(pem.decode())


class FakeSshd:
    """A paramiko server end on a socketpair: it answers the key exchange with `key`."""

    def __init__(self, key: paramiko.PKey) -> None:
        self.key = key
        self.calls = 0

    def __call__(self, address: tuple[str, int], timeout: float) -> socket.socket:
        self.calls += 1
        ours, theirs = socket.socketpair()
        server = paramiko.Transport(theirs)
        server.add_server_key(self.key)
        threading.Thread(target=self._serve, args=(server,), daemon=True).start()
        return ours

    @staticmethod
    def _serve(server: paramiko.Transport) -> None:
        with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
            server.start_server(server=paramiko.ServerInterface())


def never(address: tuple[str, int], timeout: float) -> socket.socket:
    raise AssertionError(f"connected to {address} although no key was recorded")


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "cloud.yaml"
    path.write_text(INVENTORY)
    return path


@pytest.fixture
def served() -> Iterator[tuple[FakeSshd, tuple[str, str]]]:
    key = host_key()
    yield FakeSshd(key), (key.get_name(), key.get_base64())


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen not installed")
def test_fingerprint_is_what_ssh_keygen_prints(tmp_path: Path) -> None:
    key = host_key()
    pub = tmp_path / "k.pub"
    pub.write_text(f"{key.get_name()} {key.get_base64()} test\n")
    printed = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, check=True)
    assert printed.stdout.split()[1] == fingerprint(key.get_base64())
    assert describe((key.get_name(), key.get_base64())).startswith("ED25519 SHA256:")


def test_record_replaces_a_hosts_keys_and_keeps_other_lines(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text("# mine\nother.example ssh-ed25519 AAAAother\n192.0.2.53 ssh-rsa AAAAold\n")
    record(path, {"192.0.2.53": [("ssh-ed25519", "AAAAnew")]})
    assert path.read_text() == (
        "# mine\nother.example ssh-ed25519 AAAAother\n192.0.2.53 ssh-ed25519 AAAAnew\n"
    )
    assert lookup(path, "192.0.2.53") == [("ssh-ed25519", "AAAAnew")]
    assert lookup(path, key_name("192.0.2.53", 2222)) == []
    remove(path, ["192.0.2.53"])
    assert path.read_text() == "# mine\nother.example ssh-ed25519 AAAAother\n"


def test_hashed_entries_are_found(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    hashed = paramiko.HostKeys.hash_host("192.0.2.51")
    path.write_text(f"{hashed} ssh-ed25519 AAAAx\n")
    assert lookup(path, "192.0.2.51") == [("ssh-ed25519", "AAAAx")]
    assert lookup(path, "192.0.2.52") == []


def test_unknown_hosts_are_refused_in_one_line_without_connecting(inventory: Path) -> None:
    """Why 6: pyinfra's `accept-new` trusted any new key silently."""
    loaded = load_inventory(inventory)
    trust = HostTrust.beside(inventory)
    refused = trust.admit({"compute1": ("192.0.2.53", 2222)}, connect=never)
    assert refused == {
        "compute1": f"no known host key for compute1 (192.0.2.53) — run `stackwright trust {inventory}` to "
        "check and record its fingerprint, or pass --accept-new-host-keys once"
    }
    remotes, failed = connect_reachable(loaded.model, ["controller", "compute1"], trust)
    assert remotes == {} and set(failed) == {"controller", "compute1"}
    assert all(why.startswith("no known host key for") for why in failed.values())


def test_the_engine_checks_keys_strictly_against_the_inventorys_known_hosts(inventory: Path) -> None:
    target = ssh_target(load_inventory(inventory).model, "compute1", HostTrust.beside(inventory))
    assert target["ssh_strict_host_key_checking"] == "yes"
    assert target["ssh_known_hosts_file"] == str(inventory.parent / "known_hosts")
    assert (target["ssh_hostname"], target["ssh_port"]) == ("192.0.2.53", 2222)


def test_scan_reads_the_key_the_host_offers(served: tuple[FakeSshd, tuple[str, str]]) -> None:
    sshd, key = served
    assert scan("192.0.2.53", 22, connect=sshd, timeout=5) == key


def test_accept_new_records_the_key_once_and_says_so(
    inventory: Path, served: tuple[FakeSshd, tuple[str, str]]
) -> None:
    sshd, key = served
    trust = HostTrust.beside(inventory, accept_new=True)
    assert trust.admit({"compute1": ("192.0.2.53", 2222)}, connect=sshd) == {}
    assert lookup(inventory.parent / "known_hosts", "[192.0.2.53]:2222") == [key]
    assert trust.accepted == [f"accepted the new host key of compute1 (192.0.2.53): {describe(key)}"]
    assert HostTrust.beside(inventory).admit({"compute1": ("192.0.2.53", 2222)}, connect=never) == {}


def test_a_changed_key_is_refused_naming_both_fingerprints(
    inventory: Path, served: tuple[FakeSshd, tuple[str, str]]
) -> None:
    sshd, offered = served
    old = host_key()
    recorded = (old.get_name(), old.get_base64())
    record(inventory.parent / "known_hosts", {"192.0.2.53": [recorded]})
    why = HostTrust.beside(inventory).diagnose("compute1", "192.0.2.53", 22, connect=sshd)
    assert why is not None and "\n" not in why
    assert why.startswith("host key of compute1 (192.0.2.53) changed:")
    assert fingerprint(recorded[1]) in why and fingerprint(offered[1]) in why
    assert f"stackwright trust {inventory} --limit compute1" in why


def test_trust_survey_shows_new_recorded_and_changed(
    inventory: Path, served: tuple[FakeSshd, tuple[str, str]]
) -> None:
    sshd, key = served
    path = inventory.parent / "known_hosts"
    record(path, {"192.0.2.52": [key], "192.0.2.53": [("ssh-ed25519", host_key().get_base64())]})
    targets = {
        "controller": ("192.0.2.51", 22),
        "network": ("192.0.2.52", 22),
        "compute1": ("192.0.2.53", 22),
    }
    seen = {s.name: s.status for s in survey(path, targets, connect=sshd)}
    assert seen == {"controller": "new", "network": "recorded", "compute1": "CHANGED"}
    assert record_sightings(path, survey(path, targets, connect=sshd)) == 2
    assert {s.status for s in survey(path, targets, connect=sshd)} == {"recorded"}


def test_trust_command_shows_fingerprints_and_records_them(
    inventory: Path, served: tuple[FakeSshd, tuple[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from stackwright.cli import app
    from stackwright.engine import hostkeys

    sshd, key = served
    monkeypatch.setattr(hostkeys, "CONNECT", sshd)
    runner = CliRunner()
    declined = runner.invoke(app, ["trust", str(inventory), "--limit", "compute1"], input="n\n")
    assert declined.exit_code == 1 and not (inventory.parent / "known_hosts").exists()
    result = runner.invoke(app, ["trust", str(inventory), "--limit", "compute1", "--yes"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "compute1" in text and "192.0.2.53:2222" in text and fingerprint(key[1]) in text
    assert "recorded 1 host keys" in text
    assert lookup(inventory.parent / "known_hosts", "[192.0.2.53]:2222") == [key]
    again = runner.invoke(app, ["trust", str(inventory), "--limit", "compute1"])
    assert again.exit_code == 0 and "nothing to record" in again.stdout
