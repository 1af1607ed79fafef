"""OpenStack's own validation suite against the session's Epoxy cloud (two compute nodes):
`verify --tempest` runs Tempest's smoke tests with validation on (SSH into the test guest over
floating IPs of the day-0 external network) and passes them all; the only skips are for services
the inventory does not deploy, each with its reason; nothing is left behind in the cloud."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.lab.cli import stackwright
from tests.lab.cloudkit import second_compute_node
from tests.lab.conftest import SeedLab
from tests.lab.figures import record

pytestmark = [pytest.mark.lab, pytest.mark.cloud]
# Services this inventory does not deploy: Tempest's own skip reasons for them.
NOT_DEPLOYED = re.compile(
    r"swift is not available|Cinder is not available|Volume service not enabled|Horizon"
)


def test_tempest_smoke_passes_with_validation_skipping_only_undeployed_services(epoxy_cloud: SeedLab) -> None:
    second_compute_node(epoxy_cloud)  # Tempest's multinode smoke test schedules to every node
    start = time.monotonic()
    proc = stackwright(
        "verify", str(epoxy_cloud.inventory), "--tempest", "--json", "--wait", "180", timeout=5400
    )
    record("tempest", "verify --tempest (smoke) s", round(time.monotonic() - start, 1))
    data = json.loads(proc.stdout)
    tempest = data["tempest"]
    record(
        "tempest", "smoke", {k: tempest[k] for k in ("passed", "failed", "skipped", "by_service", "tempest")}
    )
    assert proc.returncode == 0, tempest["failures"] or proc.stderr[-3000:]
    assert tempest["failed"] == 0 and tempest["passed"] >= 80, tempest
    assert not [s for s in tempest["skips"] if not NOT_DEPLOYED.search(s["reason"])], tempest["skips"]
    # validation really ran: the scenario tests log into their servers over SSH
    assert tempest["by_service"]["scenario"]["passed"] >= 3, tempest["by_service"]
    assert tempest["left_behind"] == {} and tempest["cleanup_problems"] == []
    subunit = Path(tempest["subunit"])
    assert subunit.stat().st_size > 10_000 and (subunit.parent / "tempest.log").stat().st_size > 0
    assert (subunit.parent / "etc" / "tempest.conf").stat().st_mode & 0o077 == 0  # admin password
