"""Release zed still deploys: Debian 12 hosts of their own, bare -> a Zed cloud whose smoke VM
leases across the tunnel and reads its metadata; a re-apply changes and restarts nothing.

Zed is the previous release (Debian 12's own packages); every other feature is proven on Epoxy.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.lab.cli import stackwright
from tests.lab.conftest import SeedLab, start_zed_converge
from tests.lab.figures import record

pytestmark = [pytest.mark.lab, pytest.mark.cloud]


@pytest.fixture(scope="module")
def zed_cloud(zed_lab: SeedLab) -> SeedLab:
    """The Zed lab converged from bare: started in the background by `epoxy_cloud` when the session
    runs both (the figure is then the apply's own time, beside the Epoxy tests), else here."""
    job = start_zed_converge(zed_lab)
    proc = job.result()
    record("zed", "apply (bare hosts) s", round(job.seconds, 1))
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout)
    assert report["ok"] and set(report["hosts"]) == {"controller", "network", "compute1"}, report
    return zed_lab


def test_zed_hosts_run_zeds_packages(zed_cloud: SeedLab) -> None:
    version = zed_cloud.check("compute1", "dpkg-query -W -f '${Version}' nova-compute")
    assert version.split(":", 1)[-1].startswith("26."), version
    assert "bookworm" in zed_cloud.check("controller", "grep VERSION_CODENAME /etc/os-release")


def test_zed_smoke_vm_gets_its_lease_and_metadata(zed_cloud: SeedLab) -> None:
    start = time.monotonic()
    proc = stackwright("verify", str(zed_cloud.inventory), "--smoke", "--json", "--wait", "180", timeout=1800)
    record("zed", "verify --smoke s", round(time.monotonic() - start, 1))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    assert all(c["ok"] for c in data["checks"]), [c for c in data["checks"] if not c["ok"]]
    smoke = data["smoke"]
    assert smoke["ok"] and smoke["lease"] == smoke["fixed_ip"] and smoke["uuid"] == smoke["server_id"]


def test_zed_reapply_changes_nothing_and_restarts_nothing(zed_cloud: SeedLab) -> None:
    start = time.monotonic()
    proc = stackwright("apply", str(zed_cloud.inventory), "--yes", "--json", "--no-upgrade")
    record("zed", "no-op re-apply s", round(time.monotonic() - start, 1))
    assert proc.returncode == 0, proc.stderr[-3000:]
    for host, result in json.loads(proc.stdout)["hosts"].items():
        assert result["ok"] and result["changed"] == 0 and result["restarted"] == [], (host, result)
