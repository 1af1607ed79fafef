"""`lab status`, `exec`, `ssh` by name, a second `up`, and `reboot` on the running seed lab."""

from __future__ import annotations

import subprocess

import pytest

from stackwright.lab import processes
from tests.lab.conftest import SeedLab

pytestmark = pytest.mark.lab


def test_status_shows_every_host_running_with_ssh(seed_lab: SeedLab) -> None:
    proc = seed_lab.cli("status")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for host in seed_lab.layout.hosts:
        assert host.name in proc.stdout
        assert str(host.management) in proc.stdout


def test_exec_runs_the_command_and_passes_its_exit_code(seed_lab: SeedLab) -> None:
    proc = seed_lab.cli("exec", "compute1", "--", "sh", "-c", "hostname; exit 3")
    assert proc.stdout.strip() == "compute1"
    assert proc.returncode == 3


def test_plain_ssh_by_name_works_from_root(seed_lab: SeedLab) -> None:
    proc = subprocess.run(
        ["ssh", "-o", "BatchMode=yes", "controller", "hostname"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "controller"


def test_second_up_keeps_running_hosts(seed_lab: SeedLab) -> None:
    before = {h.name: processes.nspawn_pid(h) for h in seed_lab.layout.hosts}
    proc = seed_lab.cli("up")
    assert proc.returncode == 0, proc.stderr
    assert "already running" in proc.stderr
    assert {h.name: processes.nspawn_pid(h) for h in seed_lab.layout.hosts} == before


def test_reboot_brings_the_host_back_with_the_same_addresses(seed_lab: SeedLab) -> None:
    host = seed_lab.layout.host("compute1")
    before = processes.nspawn_pid(host)
    boot_id = seed_lab.check("compute1", "cat /proc/sys/kernel/random/boot_id")
    marker = seed_lab.check("compute1", "systemctl show -p ActiveEnterTimestampMonotonic sshd")
    proc = seed_lab.cli("reboot", "compute1")
    assert proc.returncode == 0, proc.stderr
    assert processes.nspawn_pid(host) not in (None, before), "nspawn was not restarted"
    assert seed_lab.check("compute1", "systemctl show -p ActiveEnterTimestampMonotonic sshd") != marker
    del boot_id  # shared with the machine's kernel in a container, so not a reboot signal
    out = seed_lab.check("compute1", "ip -br -4 addr show")
    for lk in host.links:
        assert lk.ifname in out and str(lk.address) in out
    # the other hosts still reach it on every network it is on
    assert seed_lab.exec("network", "ping -c1 -W2 10.20.20.53").returncode == 0
    assert seed_lab.exec("controller", "ping -c1 -W2 10.10.10.53").returncode == 0


def test_unknown_host_is_a_user_error(seed_lab: SeedLab) -> None:
    proc = seed_lab.cli("exec", "nosuchhost", "--", "true")
    assert proc.returncode == 2
    assert "no host 'nosuchhost'" in proc.stderr
