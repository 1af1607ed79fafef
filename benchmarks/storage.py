"""The `storage` stage (issue 17): examples/storage.yaml's four nodes (the guide's three and a Ceph
storage node, one OSD on a file the lab makes) from bare in one `apply`, then the smoke test with
its volume phases.

Figures: the storage node from bare to a healthy cluster (its own converge: packages, monitor,
manager, OSD, pools and users; polled `ceph health` from the apply's start), volume created →
attached → the guest wrote and read it back, the guest image's upload into RBD, a server booted
from a volume cloned from the image, the storage node's memory (the Ceph daemons' RSS, the host's
cgroup), and the no-op re-apply of the four hosts.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from pathlib import Path

from common import ROOT, Report, spread, stackwright

from stackwright.inventory import load_inventory
from stackwright.lab.cgroups import host_cgroups
from stackwright.lab.layout import LabLayout

WORK = Path("/var/lib/stackwright/lab/bench")
STORAGE = "storage1"
NOOP_RUNS = 3
# examples/storage.yaml on addresses of its own, its OSD on a file the lab makes, the monitor warning
# at 5% free (the lab's hosts share this machine's disk, as the CI's lab does: tests/lab/conftest.py)
ADDRESSES = (("10.10.10.", "10.190.10."), ("10.20.20.", "10.191.20."), ("192.168.100.", "192.168.190."))
DEVICE = (
    "    osd_devices: [/srv/ceph/osd0.img]\n"
    "    overrides: {/etc/ceph/ceph.conf: {global: {mon_data_avail_warn: 5}}}\n"
)


def storage_lab() -> Path:
    text = (ROOT / "examples" / "storage.yaml").read_text()
    for old, new in ADDRESSES:
        text = text.replace(old, new)
    text = re.sub(r"    osd_devices: \[/dev/sdb\].*\n", DEVICE, text)
    path = WORK / "storage.yaml"
    WORK.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def on_host(inventory: Path, host: str, command: str) -> str:
    """`command` on a lab host over SSH (the lab's own client configuration): a cheap client, unlike
    a `stackwright lab exec` process, so polling does not weigh on the apply it measures."""
    layout = LabLayout.of(load_inventory(inventory).model, inventory)
    proc = subprocess.run(
        ["ssh", "-F", str(layout.ssh_config), "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", host, command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.stdout


class HealthWatch:
    """Polls the storage node's `ceph health` every 2 s from `start()`: when it first answered
    HEALTH_OK, or HEALTH_WARN for POOL_NO_REDUNDANCY alone (one OSD host), with the pools made."""

    def __init__(self, inventory: Path) -> None:
        self.inventory = inventory
        self.healthy_after: float | None = None
        self._stop = threading.Event()

    def _run(self, started: float) -> None:
        script = (
            "ceph --connect-timeout 5 health 2>/dev/null; ceph --connect-timeout 5 osd pool ls 2>/dev/null"
        )
        while not self._stop.wait(2.0):
            out = on_host(self.inventory, STORAGE, script)
            health = out.splitlines()[0] if out.strip() else ""
            pools = set(out.split())
            alone = (
                health.startswith("HEALTH_WARN")
                and "have no replicas configured" in health
                and ";" not in health
            )
            if (health.startswith("HEALTH_OK") or alone) and {"volumes", "images", "vms"} <= pools:
                self.healthy_after = time.monotonic() - started
                return

    def __enter__(self) -> HealthWatch:
        self._thread = threading.Thread(target=self._run, args=(time.monotonic(),), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(timeout=60)
        self._stop.set()


def memory(inventory: Path) -> str:
    rss = on_host(inventory, STORAGE, "ps -o comm=,rss= -C ceph-mon,ceph-mgr,ceph-osd")
    daemons = [line.split() for line in rss.splitlines() if len(line.split()) == 2]
    parts = ", ".join(f"{name} {int(kb) / 1024:.0f} MB" for name, kb in daemons)
    total = sum(int(kb) for _, kb in daemons) / 1024
    layout = LabLayout.of(load_inventory(inventory).model, inventory)
    current = [p / "memory.current" for p in host_cgroups(layout.host(STORAGE).cgroup)]
    found = [int(p.read_text()) for p in current if p.exists()]
    whole = f"; the whole host (its cgroup's memory.current) {found[0] / 2**20:.0f} MB" if found else ""
    return f"{parts} (Ceph daemons {total:.0f} MB){whole}"


def stage_storage(report: Report) -> None:
    section = report.section(
        "Block storage: the guide's three nodes and a Ceph storage node from bare, volumes in the guest",
        ".venv/bin/python benchmarks/run.py --only storage",
    )
    section.notes.append(
        "examples/storage.yaml (release epoxy, Debian 13 hosts) on addresses of its own; the OSD is a "
        "sparse 10 GB file `lab up` makes inside the storage node (bluestore takes it whole). The "
        "healthy figure is polled (`ceph health` every 2 s) from the apply's start: HEALTH_OK, or only "
        "POOL_NO_REDUNDANCY (one OSD host), with the three pools made. The image uploaded is the smoke "
        "guest's whole disk (raw, 20 MB)."
    )
    inventory = storage_lab()
    try:
        up_s, _ = stackwright("lab", "up", str(inventory))
        section.add("`lab up`, 4 hosts", f"{up_s:.1f} s")
        with HealthWatch(inventory) as watch:
            apply_s, proc = stackwright("apply", str(inventory), "--yes", "--json")
        hosts = json.loads(proc.stdout)["hosts"]
        section.add("`apply --yes`, 4 hosts from bare", f"{apply_s:.1f} s")
        storage = hosts[STORAGE]
        top = sorted(storage["phases"].items(), key=lambda kv: -kv[1])[:4]
        section.add(
            "storage node bare → Ceph healthy with its pools (from the apply's start)",
            f"{watch.healthy_after:.1f} s"
            if watch.healthy_after is not None
            else "not seen during the apply",
        )
        section.add(
            "— the storage node's converge: largest phases", ", ".join(f"{k} {v:.1f} s" for k, v in top)
        )
        smoke_s, proc = stackwright("verify", str(inventory), "--smoke", "--json", timeout=1800)
        smoke = json.loads(proc.stdout)["smoke"]
        phases = {p["name"]: p for p in smoke["phases"]}
        section.add(
            "`verify --smoke` with the volume phases: "
            + ", ".join(f"{p['name']} {p['seconds']:.1f} s" for p in smoke["phases"]),
            f"{smoke_s:.1f} s",
        )
        images = phases["images and flavor"]
        section.add(
            "the guest's image uploaded into RBD (`images`), with the flavor",
            f"{images['seconds']:.1f} s — {images['message']}",
        )
        attached = phases["volume in Ceph attached; the guest wrote and read it back"]
        section.add(
            "1 GB volume created → attached → the guest wrote and read back a token",
            f"{attached['seconds']:.1f} s — {attached['message']}",
        )
        booted = phases["server booted from a volume cloned from the image"]
        section.add(
            "volume cloned from the image → server booted from it → its DHCP lease on the console",
            f"{booted['seconds']:.1f} s — {booted['message']}",
        )
        section.add("the storage node's memory (RSS) after the smoke test", memory(inventory))
        noop = [stackwright("apply", str(inventory), "--yes", "--no-upgrade")[0] for _ in range(NOOP_RUNS)]
        section.add("no-op re-apply, 4 hosts (`apply --yes --no-upgrade`)", spread(noop))
    finally:
        stackwright("lab", "down", str(inventory), timeout=600)
