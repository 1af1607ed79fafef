"""One atomic-write helper (issue 15, "While there"), and writes into a container's root that
follow no symbolic link (issue 15, "Why" 8): a root inside the container must not be able to point
the lab's writes at this machine's own files."""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from stackwright.atomic import (
    TMP_PREFIX,
    atomic_write,
    atomic_write_beneath,
    atomic_writer,
    read_beneath,
    remove_beneath,
)
from stackwright.inventory import load_inventory
from stackwright.lab.hosts import host_keys, personalize
from stackwright.lab.layout import LabLayout
from stackwright.lab.system import HostCommandError
from tests.conftest import SEED


def test_write_is_whole_with_its_mode_and_keeps_the_previous_version(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "passwords.yaml"
    old_umask = os.umask(0)
    try:
        atomic_write(path, "one\n", mode=0o600, keep_previous=True)
        atomic_write(path, "two\n", mode=0o600, keep_previous=True)
    finally:
        os.umask(old_umask)
    assert path.read_text() == "two\n" and (tmp_path / "sub" / "passwords.yaml.prev").read_text() == "one\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["passwords.yaml", "passwords.yaml.prev"]


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    atomic_write(path, "old", mode=0o644)
    with pytest.raises(RuntimeError), atomic_writer(path, mode=0o644) as handle:
        handle.write(b"half")
        raise RuntimeError("cut")
    assert path.read_text() == "old"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TMP_PREFIX)]


def test_a_planted_temp_name_is_never_followed(tmp_path: Path) -> None:
    """Why 8: the lab wrote `.<name>.tmp` inside container roots, following a link put there."""
    outside = tmp_path / "outside"
    outside.write_text("this machine's file\n")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / ".hostname.tmp").symlink_to(outside)
    atomic_write_beneath(root, "/etc/hostname", "compute1\n", mode=0o644)
    assert (root / "etc" / "hostname").read_text() == "compute1\n"
    assert outside.read_text() == "this machine's file\n"


def test_a_link_on_the_way_is_refused_and_nothing_is_written_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    (root / "root").mkdir(parents=True)
    (root / "root" / ".ssh").symlink_to(outside)  # e.g. at this machine's /root/.ssh
    with pytest.raises(OSError, match="symbolic link"):
        atomic_write_beneath(root, "/root/.ssh/authorized_keys", "ssh-ed25519 AAAA\n", mode=0o600)
    assert list(outside.iterdir()) == []
    with pytest.raises(OSError, match="symbolic link"):
        read_beneath(root, "/root/.ssh/authorized_keys")


def test_a_link_at_the_target_is_replaced_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("keep\n")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hosts").symlink_to(outside)
    atomic_write_beneath(root, "/etc/hosts", "127.0.0.1 localhost\n", mode=0o644)
    assert not (root / "etc" / "hosts").is_symlink() and outside.read_text() == "keep\n"


def test_reads_and_removals_beneath_a_root_follow_no_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "10-eth0.network").write_text("x")
    (outside / "ssh_host_ed25519_key.pub").write_text("ssh-ed25519 AAAAoutside\n")
    root = tmp_path / "root"
    (root / "etc" / "systemd").mkdir(parents=True)
    (root / "etc" / "systemd" / "network").symlink_to(outside)
    (root / "etc" / "ssh").mkdir()
    (root / "etc" / "ssh" / "ssh_host_ed25519_key.pub").symlink_to(outside / "ssh_host_ed25519_key.pub")
    with pytest.raises(OSError):
        remove_beneath(root, "/etc/systemd/network", "10-*.network")
    assert (outside / "10-eth0.network").exists()
    with pytest.raises(OSError):
        read_beneath(root, "/etc/ssh/ssh_host_ed25519_key.pub")


def test_personalize_refuses_a_root_whose_ssh_directory_points_outside(tmp_path: Path) -> None:
    layout = LabLayout.of(load_inventory(SEED).model, SEED)
    host = replace(layout.hosts[2], dir=tmp_path / "compute1")
    outside = tmp_path / "machine-root-ssh"
    outside.mkdir()
    (host.root / "etc").mkdir(parents=True)
    (host.root / "etc" / "machine-id").write_text("")
    (host.root / "root").mkdir()
    (host.root / "root" / ".ssh").symlink_to(outside)
    with pytest.raises(HostCommandError, match="cannot write into its root"):
        personalize(host, layout, "ssh-ed25519 AAAAlab\n")
    assert list(outside.iterdir()) == []


def test_personalize_writes_the_hosts_own_files(tmp_path: Path) -> None:
    layout = LabLayout.of(load_inventory(SEED).model, SEED)
    host = replace(layout.hosts[2], dir=tmp_path / "compute1")
    (host.root / "etc" / "systemd" / "network").mkdir(parents=True)
    (host.root / "etc" / "systemd" / "network" / "10-old.network").write_text("old")
    (host.root / "etc" / "machine-id").write_text("")
    personalize(host, layout, "ssh-ed25519 AAAAlab\n")
    assert (host.root / "etc" / "hostname").read_text() == "compute1\n"
    assert len((host.root / "etc" / "machine-id").read_text().strip()) == 32
    assert stat.S_IMODE((host.root / "root" / ".ssh").stat().st_mode) == 0o700
    networks = sorted(p.name for p in (host.root / "etc" / "systemd" / "network").iterdir())
    assert networks == ["10-eth0.network", "10-eth1.network"]
    # restarted after a power cut: the network configuration `apply` wrote stays
    (host.root / "etc" / "systemd" / "network" / "10-eth1.network").write_text("apply's eth1")
    (host.root / "etc" / "systemd" / "network" / "10-br-phy.network").write_text("apply's br-phy")
    personalize(host, layout, "ssh-ed25519 AAAAlab\n")
    network = host.root / "etc" / "systemd" / "network"
    assert (network / "10-eth1.network").read_text() == "apply's eth1"
    assert (network / "10-br-phy.network").read_text() == "apply's br-phy"
    (host.root / "etc" / "ssh").mkdir()
    (host.root / "etc" / "ssh" / "ssh_host_ed25519_key.pub").write_text("ssh-ed25519 AAAAkey root@x\n")
    assert host_keys(host) == [("ssh-ed25519", "AAAAkey")]
