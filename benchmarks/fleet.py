"""The `fleet` stage (issue 21): a controller, a network node and 20 compute nodes from bare in one
`apply`, the controller caching every node's packages (`package_cache`); the lab gives the other
hosts no route to the mirror.

Figures: the apply's wall time against the CPU bound (all lab hosts' CPU-seconds during it over
this machine's CPUs: the fastest it could be here), the engine's own CPU per host and peak RSS (the
apply process's rusage, from wait4), `verify` (20 hypervisors up, the cache's hit rate), the smoke
VM on the last compute node (every other nova-compute disabled for it, then enabled again), and
the no-op re-apply of all 22 hosts.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from common import CLI, CommandFailed, Report, spread, stackwright
from cpu import CpuSampler, HostCpu

from stackwright.cloud import admin_connection
from stackwright.inventory import load_inventory
from stackwright.secrets import load_passwords

WORK = Path("/var/lib/stackwright/lab/bench")
COMPUTES = 20
NOOP_RUNS = 3
FLEET = """# benchmarks/run.py fleet stage: a lab of its own
release: epoxy
networks:
  management: {{cidr: 10.170.10.0/24}}
  data:       {{cidr: 10.180.20.0/24}}
  external:   {{cidr: 192.168.170.0/24, gateway: 192.168.170.1, floating: 192.168.170.128/25}}
tenant_network_type: vxlan
package_cache: {{host: fctl, upstream_proxy: "http://10.170.10.1:3142"}}
nodes:
  fctl: {{roles: [controller], management: 10.170.10.11, external: 192.168.170.11}}
  fnet: {{roles: [network], management: 10.170.10.12, data: 10.180.20.12, external: 192.168.170.12}}
{computes}"""


def fleet_lab(computes: int) -> Path:
    path = WORK / "fleet.yaml"
    WORK.mkdir(parents=True, exist_ok=True)
    nodes = "".join(
        f"  fc{n}: {{roles: [compute], management: 10.170.10.{20 + n}, data: 10.180.20.{20 + n}}}\n"
        for n in range(1, computes + 1)
    )
    path.write_text(FLEET.format(computes=nodes))
    return path


def with_rusage(*args: str, timeout: float = 7200) -> tuple[float, str, resource.struct_rusage]:
    """`stackwright ARGS`, timed, with the process's own rusage (wait4: its CPU and peak RSS, not
    those of the benchmark's other children)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.monotonic()
        proc = subprocess.Popen([*CLI, *args], stdout=out, stderr=err, text=True)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                raise CommandFailed(f"`stackwright {' '.join(args)}` still running after {timeout:.0f} s")
            time.sleep(0.2)
        seconds = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        print(stdout[-4000:] + stderr[-3000:])
        raise CommandFailed(f"`stackwright {' '.join(args)}` failed ({proc.returncode})")
    return seconds, stdout, usage


def smoke_on(inventory: Path, host: str) -> dict[str, Any]:
    """The smoke test (what `verify --smoke` runs after its checks) with every nova-compute but
    `host`'s disabled, so the VM lands there. Not through `verify`: its checks count a disabled
    compute service as a failure and would not run the smoke test (the stage's second run)."""
    import dataclasses

    from stackwright.smoke.image import build_guest
    from stackwright.smoke.run import run_smoke

    loaded = load_inventory(inventory)
    conn = admin_connection(loaded, load_passwords(inventory.parent / "passwords.yaml"))
    others = [s for s in conn.compute.services(binary="nova-compute") if s.host.split(".")[0] != host]
    for service in others:
        conn.compute.disable_service(service, disabled_reason=f"benchmark: smoke VM on {host}")
    try:
        report = run_smoke(conn, loaded.model, build_guest())
    finally:
        for service in others:
            conn.compute.enable_service(service)
    return {"smoke": dataclasses.asdict(report)}


def stage_fleet(report: Report) -> None:
    section = report.section(
        f"Fleet: a controller, a network node and {COMPUTES} compute nodes from bare in one apply",
        ".venv/bin/python benchmarks/run.py --only fleet",
    )
    section.notes.append(
        "Release epoxy (Debian 13 hosts), `package_cache: fctl` (the lab's apt proxy serves only "
        "fctl; every other host fetches through its apt-cacher-ng). The CPU bound is all lab hosts' "
        "CPU-seconds during the apply over this machine's CPUs: no schedule finishes sooner here."
    )
    inventory = fleet_lab(COMPUTES)
    hosts = 2 + COMPUTES
    cpus = os.cpu_count() or 1
    try:
        up_s, _ = stackwright("lab", "up", str(inventory))
        section.add(f"`lab up`, {hosts} hosts", f"{up_s:.1f} s")
        with CpuSampler() as cpu, HostCpu() as host_cpu:
            seconds, stdout, usage = with_rusage("apply", str(inventory), "--yes", "--json")
        result = json.loads(stdout)
        converged = sum(1 for r in result["hosts"].values() if r["ok"])
        bound = sum(host_cpu.seconds.values()) / cpus
        section.add(
            f"`apply --yes` of all {hosts} hosts from bare",
            f"{seconds:.0f} s; {converged}/{hosts} converged; {cpu.summary()}",
            f"all {hosts}",
            converged == hosts,
        )
        computes = [f"fc{n}" for n in range(1, COMPUTES + 1)]
        per_node = [host_cpu.seconds.get(c, 0.0) for c in computes]
        section.add(
            "CPU-s per host: compute nodes / controller / network node",
            f"median {statistics.median(per_node):.0f} (min {min(per_node):.0f}, max {max(per_node):.0f}) / "
            f"{host_cpu.seconds.get('fctl', 0.0):.0f} / {host_cpu.seconds.get('fnet', 0.0):.0f}",
        )
        section.add(
            f"wall time / CPU bound (all lab hosts' CPU-s {sum(host_cpu.seconds.values()):.0f} / {cpus} CPUs "
            f"= {bound:.0f} s)",
            f"{seconds / bound:.2f}x",
            "≤ 1.15x",
            seconds / bound <= 1.15,
        )
        engine = usage.ru_utime + usage.ru_stime
        section.add(
            "the engine's own CPU (the apply process: user + system)",
            f"{engine:.1f} CPU-s = {engine / hosts:.2f} per host",
            "≤ 0.5 per host",
            engine / hosts <= 0.5,
        )
        section.add("the engine's peak RSS", f"{usage.ru_maxrss / 1024:.0f} MB")

        _, proc = stackwright("verify", str(inventory), "--json", "--wait", "300", timeout=1200)
        checks = json.loads(proc.stdout)
        up = sum(1 for c in checks["checks"] if c["id"].startswith("hypervisor:") and c["ok"])
        section.add("`verify`: hypervisors up", f"{up}/{COMPUTES}", f"{COMPUTES}", up == COMPUTES)
        cache = checks.get("package_cache") or {}
        rate = cache.get("hit_rate")
        section.add(
            "the package cache after the apply",
            f"{(rate or 0):.0%} hit rate: {cache.get('bytes_served', 0) / 1e6:.0f} MB served, "
            f"{cache.get('bytes_fetched', 0) / 1e6:.0f} MB from the mirror",
        )
        smoke = smoke_on(inventory, computes[-1]).get("smoke", {})
        section.add(
            f"smoke VM on the last node ({computes[-1]}): lease and metadata",
            f"{'ok' if smoke.get('ok') else 'failed'} on {smoke.get('compute_host')}",
            "ok",
            bool(smoke.get("ok")) and str(smoke.get("compute_host", "")).split(".")[0] == computes[-1],
        )
        noop: list[float] = []
        changed = 0
        for _ in range(NOOP_RUNS):
            noop_s, proc = stackwright("apply", str(inventory), "--yes", "--json", "--no-upgrade")
            noop.append(noop_s)
            changed += sum(r["changed"] for r in json.loads(proc.stdout)["hosts"].values())
        section.add(
            f"no-op re-apply of all {hosts} hosts (`apply --yes --no-upgrade`)",
            spread(noop) + f"; {changed} changes",
            "≤ 10 s, 0 changes",
            statistics.median(noop) <= 10 and changed == 0,
        )
    finally:
        stackwright("lab", "down", str(inventory), timeout=1800)
