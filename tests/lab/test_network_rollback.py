"""A network change that cuts a host off is rolled back by the host itself (what `netplan try` does)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stackwright.polling import poll
from tests.lab.conftest import SeedLab

pytestmark = pytest.mark.lab
PROBE = Path(__file__).with_name("rollback_probe.py")


def test_network_change_that_cuts_the_host_off_is_rolled_back(seed_lab: SeedLab) -> None:
    host = "compute1"
    before = seed_lab.check(host, "cat /etc/systemd/network/10-eth0.network")
    proc = subprocess.run(
        [sys.executable, str(PROBE), str(seed_lab.inventory), host],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    verdict = json.loads(proc.stdout.strip().splitlines()[-1])
    assert verdict["raised"], verdict
    assert "stopped answering" in verdict["error"]
    back = poll(lambda: seed_lab.exec(host, "true", timeout=10).returncode == 0, within_s=150, every_s=2)
    assert back, f"{host} did not come back within 150 s after the rollback"
    assert seed_lab.check(host, "cat /etc/systemd/network/10-eth0.network") == before
    assert "10.10.10.53/24" in seed_lab.check(host, "ip -4 -o addr show dev eth0")
    assert (
        seed_lab.exec(host, "systemctl is-active stackwright-net-rollback.timer").stdout.strip() != "active"
    )
