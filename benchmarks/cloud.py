"""Benchmark: bare lab hosts -> a working cloud, and the figures around it (run as root).

Run: .venv/bin/python benchmarks/cloud.py [--noop-runs 3]

On a lab of examples/seed.yaml plus two more hosts (compute2, and a "floor" host that only
installs packages), it measures, in one run with the same apt proxy cache:
  1. `lab up` of the three seed hosts;
  2. `apply --yes` of the whole cluster from bare hosts (upgrade included, as by default);
  3. `verify` and `verify --smoke` (test VM ACTIVE with its DHCP address and metadata);
  4. no-op re-apply of the three hosts (median of --noop-runs) and of one host (compute1);
  5. a fresh compute node (compute2, `apply --limit compute2`) vs the floor: the same package set
     installed by plain `apt-get install --no-install-recommends` on a fresh host.
It tears the lab down at the end and prints a Markdown table. It must not run beside another lab
using the same addresses (the test suite's).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = Path("/var/lib/stackwright/lab/bench-inventories")
EXTRA = """  compute2:
    roles: [compute]
    management: 10.10.10.54
    data: 10.20.20.54
"""
# The floor host lives in a lab of its own (its own addresses; the apt proxy's cache on disk is shared).
FLOOR = """release: zed
networks:
  management: {cidr: 10.210.10.0/24}
  data: {cidr: 10.220.20.0/24}
  external: {cidr: 192.168.230.0/24}
nodes:
  floor: {roles: [controller, network, compute], management: 10.210.10.59, data: 10.220.20.59,
          external: 192.168.230.59}
  plainfloor: {roles: [compute], management: 10.210.10.58, data: 10.220.20.58}
"""
# The floor keeps services from starting, as apply does (policy-rc.d): pure package installation.
# A plain `apt-get install` also starts every service from its postinst; nova-compute then waits for a
# conductor that is not there: we measure that too ("plainfloor"), but it is not the floor.
NO_START = "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && "
CLI = [sys.executable, "-c", "from stackwright.cli import main; main()"]


def run(*args: str, timeout: float = 3600) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.monotonic()
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"`stackwright {' '.join(args)}` failed ({proc.returncode})")
    return seconds, proc


def timed_ssh(host: str, command: str) -> float:
    start = time.monotonic()
    subprocess.run(["ssh", host, command], check=True, timeout=3600)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--noop-runs", type=int, default=3)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    seed = WORK / "seed.yaml"
    shutil.copy(ROOT / "examples" / "seed.yaml", seed)
    floor_inventory = WORK / "floor.yaml"
    figures: dict[str, str] = {}
    try:
        seconds, _ = run("lab", "up", str(seed))
        figures["lab up, 3 hosts (warm base image)"] = f"{seconds:.1f} s"
        bare_to_vm = seconds
        seconds, _ = run("apply", str(seed), "--yes")
        figures["apply, whole cluster from bare hosts (packages through the lab proxy)"] = f"{seconds:.1f} s"
        bare_to_vm += seconds
        seconds, _ = run("verify", str(seed))
        figures["verify"] = f"{seconds:.1f} s"
        seconds, proc = run("verify", str(seed), "--smoke", "--json")
        smoke = json.loads(proc.stdout)["smoke"]
        until_lease = sum(
            p["seconds"] for p in smoke["phases"] if "uuid" not in p["name"] and "cleanup" not in p["name"]
        )
        figures["verify --smoke (whole run incl. cleanup)"] = f"{seconds:.1f} s"
        figures["bare hosts -> smoke VM ACTIVE with its DHCP address"] = (
            f"{(bare_to_vm + until_lease) / 60:.1f} min (target < 10 min)"
        )
        for phase in smoke["phases"]:
            figures[f"smoke: {phase['name']}"] = f"{phase['seconds']:.1f} s"
        noop = [run("apply", str(seed), "--yes", "--no-upgrade")[0] for _ in range(args.noop_runs)]
        figures["no-op re-apply, 3 hosts (whole process)"] = (
            f"median {statistics.median(noop):.2f} s (min {min(noop):.2f}, max {max(noop):.2f}; target ≤ 5 s)"
        )
        one = [
            run("apply", str(seed), "--yes", "--no-upgrade", "--limit", "compute1")[0]
            for _ in range(args.noop_runs)
        ]
        figures["no-op re-apply, 1 host (compute1)"] = (
            f"median {statistics.median(one):.2f} s (min {min(one):.2f}, max {max(one):.2f}; target ≤ 3 s)"
        )

        seed.write_text(seed.read_text() + EXTRA)
        run("lab", "up", str(seed))
        floor_inventory.write_text(FLOOR)
        run("lab", "up", str(floor_inventory))
        from stackwright.context import HostFacts
        from stackwright.inventory import load_inventory
        from stackwright.planner import plan_cluster
        from stackwright.secrets import load_passwords

        lab_facts = {"compute2": HostFacts(virt_type="qemu", ovs_datapath="netdev", containerized=True)}
        plan = plan_cluster(load_inventory(seed), load_passwords(WORK / "passwords.yaml"), facts=lab_facts)
        packages = plan.hosts["compute2"].packages()
        floor_cmd = (
            "export DEBIAN_FRONTEND=noninteractive; apt-get update -q >/dev/null && "
            "apt-get install -y -q --no-install-recommends " + " ".join(packages) + " >/dev/null"
        )
        floor = timed_ssh("floor", NO_START + floor_cmd)
        plain = timed_ssh("plainfloor", floor_cmd)
        seconds, _ = run("apply", str(seed), "--yes", "--limit", "compute2")
        figures[
            "floor: apt-get install --no-install-recommends of the compute package set, services kept "
            "from starting (fresh host)"
        ] = f"{floor:.1f} s"
        figures[
            "plain apt-get install of the same set (postinsts start services; nova-compute waits "
            "for a conductor that is not there)"
        ] = f"{plain:.1f} s"
        figures["fresh compute node converge (apply --limit compute2, incl. discover_hosts)"] = (
            f"{seconds:.1f} s = {seconds / floor:.2f}x the floor (target ≤ 1.3x)"
        )
    finally:
        for inventory in (seed, floor_inventory):
            if inventory.exists():
                subprocess.run(
                    [*CLI, "lab", "down", str(inventory)], capture_output=True, check=False, timeout=600
                )
    print("| what | figure |\n|---|---|")
    for what, figure in figures.items():
        print(f"| {what} | {figure} |")


if __name__ == "__main__":
    main()
