"""Is the storage nodes' Ceph cluster healthy? Read on the first monitor over SSH (`ceph` as
client.admin there), parsed here (pure), shown by verify and doctor.

A cluster with one OSD host holds pools of one replica: Ceph warns POOL_NO_REDUNDANCY for each,
which is what such a cluster is (the lab's), so that warning alone counts as healthy, named.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from stackwright.ceph import POOLS, CephCluster, cluster
from stackwright.checks.verify import VerifyLine
from stackwright.inventory import LoadedInventory
from stackwright.releases.modern.ceph import CEPH
from stackwright.yamlsource import UserError

STATUS_SCRIPT = (
    f"{CEPH} health detail --format json; echo '#osd'; {CEPH} osd stat --format json; "
    f"echo '#pools'; {CEPH} osd pool ls"
)
# Warnings a cluster of one OSD host has by its nature (its pools hold one replica).
SINGLE_HOST_WARNINGS = frozenset({"POOL_NO_REDUNDANCY"})


@dataclass(frozen=True)
class CephStatus:
    health: str  # HEALTH_OK | HEALTH_WARN | HEALTH_ERR | "" (no answer)
    checks: dict[str, str] = field(default_factory=dict)  # code: summary
    details: dict[str, list[str]] = field(default_factory=dict)  # code: detail lines
    osds: int = 0
    osds_up: int = 0
    osds_in: int = 0
    pools: tuple[str, ...] = ()
    error: str = ""


def parse_status(stdout: str, stderr: str = "") -> CephStatus:
    health_text, _, rest = stdout.partition("#osd")
    osd_text, _, pool_text = rest.partition("#pools")
    try:
        health = json.loads(health_text)
    except ValueError:
        reason = (stderr.strip().splitlines() or ["no answer from the monitors"])[-1]
        return CephStatus("", error=reason[:300])
    checks = {
        code: str(check.get("summary", {}).get("message", ""))
        for code, check in (health.get("checks") or {}).items()
    }
    details = {
        code: [str(d.get("message", "")) for d in check.get("detail", [])]
        for code, check in (health.get("checks") or {}).items()
    }
    try:
        osd = json.loads(osd_text)
    except ValueError:
        osd = {}
    return CephStatus(
        health=str(health.get("status", "")),
        checks=checks,
        details=details,
        osds=int(osd.get("num_osds", 0)),
        osds_up=int(osd.get("num_up_osds", 0)),
        osds_in=int(osd.get("num_in_osds", 0)),
        pools=tuple(pool_text.split()),
    )


def expected_checks(status: CephStatus, osd_hosts: int) -> dict[str, str]:
    """The health checks that say what this cluster is, not that something broke: a one-host
    cluster's missing redundancy."""
    expected = {code: "one OSD host: pools of one replica" for code in SINGLE_HOST_WARNINGS if osd_hosts == 1}
    return {code: why for code, why in expected.items() if code in status.checks}


def unexpected_checks(status: CephStatus, osd_hosts: int) -> dict[str, str]:
    """The health checks that say something is wrong (not just what this cluster is)."""
    expected = expected_checks(status, osd_hosts)
    return {code: text for code, text in status.checks.items() if code not in expected}


def verify_lines(status: CephStatus, ceph: CephCluster) -> list[VerifyLine]:
    where = ceph.first_monitor
    if status.error:
        return [
            VerifyLine(
                "ceph:health",
                False,
                f"Ceph (asked on {where}): {status.error}",
                "on the storage nodes: `systemctl status ceph-mon@<node>`; `stackwright doctor` says more",
            )
        ]
    bad = unexpected_checks(status, ceph.osd_hosts)
    if not bad:
        expected = expected_checks(status, ceph.osd_hosts)
        note = "".join(f"; {code} expected: {why}" for code, why in sorted(expected.items()))
        health = VerifyLine("ceph:health", True, f"Ceph {status.health}{note}")
    else:
        codes = "; ".join(f"{code}: {text}" for code, text in sorted(bad.items()))
        health = VerifyLine(
            "ceph:health",
            False,
            f"Ceph {status.health}: {codes}",
            f"on {where}: `ceph health detail`; `stackwright doctor` names the cause",
        )
    want = len(ceph.osds)
    osds_ok = status.osds_up == want and status.osds_in == want
    osds = VerifyLine(
        "ceph:osds",
        osds_ok,
        f"Ceph OSDs: {status.osds_up} up, {status.osds_in} in, of {want}",
        None if osds_ok else "on the storage nodes: `systemctl status 'ceph-osd@*'` and /var/log/ceph/",
    )
    missing = [p.name for p in POOLS if p.name not in status.pools]
    pools = VerifyLine(
        "ceph:pools",
        not missing,
        f"Ceph pools: {', '.join(p.name for p in POOLS)} present"
        if not missing
        else f"Ceph pools missing: {', '.join(missing)}",
        None if not missing else f"re-run `stackwright apply` (the pools are made on {where})",
    )
    return [health, osds, pools]


def read_status(loaded: LoadedInventory, ceph: CephCluster) -> CephStatus:
    """The first monitor's answers over SSH (host keys as apply trusts them)."""
    from stackwright.engine.hostkeys import HostTrust
    from stackwright.engine.remote import connect

    host = ceph.first_monitor
    try:
        remote = connect(loaded.model, [host], HostTrust.beside(loaded.path))[host]
        result = remote.run(STATUS_SCRIPT, timeout=120)
    except UserError as exc:
        return CephStatus("", error=f"cannot reach {host}: {exc}")
    return parse_status(result.stdout, result.stderr)


def check(loaded: LoadedInventory, pw: Mapping[str, str]) -> list[VerifyLine]:
    ceph = cluster(loaded.model, pw)
    if ceph is None:
        return []
    return verify_lines(read_status(loaded, ceph), ceph)
