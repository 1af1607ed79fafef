"""Every benchmark in one command: prints the figures and writes them into docs/benchmarks.md.

Run (as root, nothing else using the machine, no other lab on the seed's addresses):

    .venv/bin/python benchmarks/run.py [--runs 3] [--no-write] \
        [--only plan,lab,cloud,cloud-zed,scale,peer,fleet,ui,tempest]

Stages (each brings up and tears down its own lab hosts; the apt proxy's cache on disk is shared):
- plan:  `plan` of a generated 500-node inventory, whole process, peak RSS;
- lab:   warm `lab up` of the seed's 3 hosts until each answers SSH, `lab reboot`, `lab down`, and
         one cold base image build;
- cloud: the seed cloud from bare hosts to the smoke VM (`lab up`, `apply --yes`, `verify`,
         `verify --smoke`), no-op re-applies of 3 hosts and of 1, `doctor` warm and cold, then
         fresh compute nodes (`apply --limit computeN`) against the floor: the same package set
         installed by `apt-get install --no-install-recommends` on fresh lab hosts of their own
         (examples/seed.yaml: the default release, epoxy);
- cloud-zed: the same up to `doctor` for examples/seed-zed.yaml (no floor);
- scale: on a lab of its own (pctl, pnet, pc1..), 1 compute node from bare vs 4 in parallel,
         with the machine's CPU sampled and CPU-seconds charged to each lab host (cpu.py), and the
         first 1-node run's CPU-seconds per command from process accounting (pacct.py; its
         section's command says scale-profile, which runs the same stage);
- fleet: a controller, a network node and 20 compute nodes from bare in one apply, through a
         package cache on the controller: wall time against the CPU bound, the engine's CPU and
         peak RSS, verify, the smoke VM on the last node, the 22-host no-op (fleet.py);
- ui, tempest: the seed cloud with a second compute node: `verify --ui` figures and Tempest's API
         run (compute, network, image, identity), see api_cloud.py;
- peer:  the same compute node converged by an Ansible playbook written for this benchmark
         (benchmarks/ansible_peer/) and by stackwright, fresh and no-op, side by side.
Medians over --runs samples (no-op, plan and doctor runs: at least 5).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_cloud import stage_api_cloud
from common import CLI, ROOT, CommandFailed, Report, Section, machine_facts, spread, ssh, stackwright, timed
from cpu import SETTLED_SHARE, CpuSampler, HostCpu, settle
from fleet import stage_fleet
from pacct import ProcessAccounting
from storage import stage_storage

WORK = Path("/var/lib/stackwright/lab/bench")
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"
ANSIBLE_VENV = Path("/var/cache/stackwright/bench-venvs/ansible")
ANSIBLE_VERSION = "12.3.0"  # ansible-core 2.19; only for the peer stage, never a project dependency
LAB_KEY = "/var/lib/stackwright/lab/ssh/id_ed25519"
# Services held during installation, as apply does (policy-rc.d): the floor is package installation.
HOLD = "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && "


def compute_packages(inventory: Path, host: str) -> tuple[str, ...]:
    from stackwright.context import HostFacts
    from stackwright.inventory import load_inventory
    from stackwright.planner import plan_cluster
    from stackwright.secrets import default_passwords_path, load_passwords

    facts = {host: HostFacts(virt_type="qemu", ovs_datapath="netdev", containerized=True)}
    loaded = load_inventory(inventory)
    plan = plan_cluster(loaded, load_passwords(default_passwords_path(inventory)), facts=facts)
    return plan.hosts[host].packages()


def waited_for(verify_output: str) -> str:
    """`; waited for: X (n re-checks)` from verify's "not yet: ..." lines: what came up last."""
    rounds = re.findall(r"not yet: (.+?) — checking again", verify_output)
    if not rounds:
        return ""
    ids = sorted({i.strip() for r in rounds for i in r.split(",")})
    return f"; waited for: {', '.join(ids)} ({len(rounds)} re-checks, last: {rounds[-1]})"


def lab_down(*inventories: Path) -> None:
    for inventory in inventories:
        if inventory.exists():
            subprocess.run(
                [*CLI, "lab", "down", str(inventory)], capture_output=True, check=False, timeout=900
            )


# ---------------------------------------------------------------- plan, lab


def stage_plan(report: Report, runs: int) -> None:
    from plan_500 import measure

    section = report.section("Plan of a 500-node inventory", ".venv/bin/python benchmarks/run.py --only plan")
    times, peaks, lines = measure(500, max(runs, 5))
    section.add(
        "wall time, whole process (1 controller, 1 network, 498 compute nodes; full file contents "
        "to /dev/null)",
        spread(times),
        "≤ 1.5 s",
        statistics.median(times) <= 1.5,
    )
    section.add("peak RSS", spread(peaks, "MB", 0), "≤ 200 MB", max(peaks) <= 200)
    section.add("output", f"{lines:,} lines")


def stage_lab(report: Report, runs: int) -> None:
    from lab_up import measure

    section = report.section("Lab hosts", ".venv/bin/python benchmarks/run.py --only lab")
    ups, reboots, downs, cold = measure(max(runs, 3), cold=True)
    section.add(
        "warm `lab up` of the seed's 3 hosts until each answers `ssh HOST true`",
        spread(ups),
        "≤ 15 s",
        statistics.median(ups) <= 15,
    )
    section.add("`lab reboot compute1` until it answers SSH with its addresses", spread(reboots))
    section.add("`lab down` (hosts, overlays, bridges, veths, proxy)", spread(downs))
    if cold is not None:
        section.add(
            "cold base image build (debootstrap minbase + lab settings; once per machine)",
            f"{cold[0]:.1f} s, {cold[1]} MB",
        )


# ---------------------------------------------------------------- the seed cloud

# Hosts that only install packages; the inventory still needs a controller and a network node.
FLOOR_LAB = """release: {release}
networks:
  management: {{cidr: 10.210.10.0/24}}
  data: {{cidr: 10.220.20.0/24}}
  external: {{cidr: 192.168.230.0/24}}
nodes:
  floorctl: {{roles: [controller, network], management: 10.210.10.9, data: 10.220.20.9,
             external: 192.168.230.9}}
{nodes}"""


def stage_cloud(report: Report, runs: int, example: str = "seed.yaml", floor: bool = True) -> None:
    """The example's cloud from bare hosts to a VM, its no-op and doctor; with `floor`, fresh
    compute nodes against plain apt (the floor)."""
    WORK.mkdir(parents=True, exist_ok=True)
    seed = WORK / example
    shutil.copy(ROOT / "examples" / example, seed)
    release = str(yaml.safe_load(seed.read_text())["release"])
    # runs pairs without the upgrade, one pair with it, one plain apt-get (services not held)
    floors = [f"floor{i}" for i in range(1, runs + 3)]
    floor_lab = WORK / "floor.yaml"
    floor_lab.write_text(
        FLOOR_LAB.format(
            release=release,
            nodes="".join(
                f"  {n}: {{roles: [compute], management: 10.210.10.{10 + i}, data: 10.220.20.{10 + i}}}\n"
                for i, n in enumerate(floors)
            ),
        )
    )
    stage = "cloud" if floor else f"cloud-{release}"
    section = report.section(
        f"The seed cloud, {release} (examples/{example}): bare hosts to a VM, no-op re-apply, doctor"
        + (", a fresh compute node vs the floor" if floor else ""),
        f".venv/bin/python benchmarks/run.py --only {stage}",
    )
    try:
        up_s, _ = stackwright("lab", "up", str(seed))
        section.add("`lab up`, 3 hosts", f"{up_s:.1f} s")
        apply_s, proc = stackwright("apply", str(seed), "--yes", "--json")
        phases = json.loads(proc.stdout)["hosts"]
        section.add(
            "`apply --yes`, whole cluster from bare hosts (node preparation with full-upgrade, "
            "packages, files, services, db syncs, discover_hosts)",
            f"{apply_s:.1f} s",
        )
        for host, result in phases.items():
            top = sorted(result["phases"].items(), key=lambda kv: -kv[1])[:3]
            section.add(f"— {host}: largest phases", ", ".join(f"{k} {v:.1f} s" for k, v in top))
        verify_s, proc = stackwright("verify", str(seed), "--wait", "300")
        section.add(
            "`verify` right after (waits, bounded, while the agents report in)",
            f"{verify_s:.1f} s" + waited_for(proc.stdout),
        )
        smoke_s, proc = stackwright("verify", str(seed), "--smoke", "--json", timeout=1800)
        smoke = json.loads(proc.stdout)["smoke"]
        to_lease = sum(
            p["seconds"] for p in smoke["phases"] if p["name"] not in ("cleanup",) and "uuid" not in p["name"]
        )
        section.add(
            "`verify --smoke`: " + ", ".join(f"{p['name']} {p['seconds']:.1f} s" for p in smoke["phases"]),
            f"{smoke_s:.1f} s",
        )
        bare_to_vm = up_s + apply_s + to_lease
        section.add(
            "bare hosts → smoke VM ACTIVE with its DHCP address (lab up + apply + smoke up to the lease)",
            f"{bare_to_vm / 60:.1f} min",
            "< 10 min",
            bare_to_vm < 600,
        )
        noop = [stackwright("apply", str(seed), "--yes", "--no-upgrade")[0] for _ in range(max(runs, 5))]
        section.add(
            "no-op re-apply, 3 hosts, whole process (`apply --yes --no-upgrade`)",
            spread(noop),
            "≤ 3 s",
            statistics.median(noop) <= 3,
        )
        noop_up = [stackwright("apply", str(seed), "--yes")[0] for _ in range(max(runs, 5))]
        section.add(
            "no-op re-apply, 3 hosts, with node preparation (apt lists fresh: no update; `apt-get -s` "
            "finds nothing to upgrade)",
            spread(noop_up),
        )
        one = [
            stackwright("apply", str(seed), "--yes", "--no-upgrade", "--limit", "compute1")[0]
            for _ in range(max(runs, 5))
        ]
        section.add(
            "no-op re-apply, 1 host (`--limit compute1`; includes the controller's discover_hosts guard)",
            spread(one),
            "≤ 3 s",
            statistics.median(one) <= 3,
        )
        doctor_cold, _ = stackwright("doctor", str(seed))
        doctor = [stackwright("doctor", str(seed))[0] for _ in range(max(runs, 5))]
        section.add(
            "`doctor`, healthy cloud, every check passing, warm",
            spread(doctor),
            "≤ 5 s",
            statistics.median(doctor) <= 5,
        )
        section.add(
            "`doctor`, first run on these hosts (option data for oslo-config-validator generated)",
            f"{doctor_cold:.1f} s",
        )
        if floor:
            _fresh_node_vs_floor(section, runs, seed, floors, floor_lab)
    finally:
        lab_down(seed, floor_lab)


def _fresh_node_vs_floor(section: Section, runs: int, seed: Path, floors: list[str], floor_lab: Path) -> None:
    computes = [f"compute{i}" for i in range(2, runs + 3)]
    seed.write_text(
        seed.read_text()
        + "".join(
            f"  {c}:\n    roles: [compute]\n    management: 10.10.10.{52 + i}\n    data: 10.20.20.{52 + i}\n"
            for i, c in enumerate(computes, start=2)
        )
    )
    stackwright("lab", "up", str(seed))
    stackwright("lab", "up", str(floor_lab))
    update = "export DEBIAN_FRONTEND=noninteractive; apt-get update -q >/dev/null && "
    upgrade = "apt-get -q -y full-upgrade >/dev/null && "
    install = (
        "apt-get install -y -q --no-install-recommends "
        + " ".join(compute_packages(seed, computes[0]))
        + " >/dev/null"
    )
    # Like for like: the floor's apt work is `update` + `install`, so stackwright runs with
    # --no-upgrade; one more pair compares the default (node preparation's full-upgrade too)
    # with a floor that upgrades as well. Who goes first alternates.
    floor_s: list[float] = []
    fresh_s: list[float] = []
    for i, compute in enumerate(computes[:runs]):

        def floor(i: int = i) -> None:
            floor_s.append(ssh(floors[i], HOLD + update + install))

        def fresh(compute: str = compute) -> None:
            fresh_s.append(stackwright("apply", str(seed), "--yes", "--no-upgrade", "--limit", compute)[0])

        for step in (floor, fresh) if i % 2 == 0 else (fresh, floor):
            step()
    floor_up = ssh(floors[runs], HOLD + update + upgrade + install)
    fresh_up = stackwright("apply", str(seed), "--yes", "--limit", computes[runs])[0]
    plain = ssh(floors[runs + 1], update + install)
    ratio = statistics.median(fresh_s) / statistics.median(floor_s)
    section.add(
        "floor: `apt-get update && apt-get install --no-install-recommends` of the compute "
        "package set on a fresh host, services held (policy-rc.d)",
        spread(floor_s, digits=1),
    )
    section.add(
        "fresh compute node: `apply --yes --no-upgrade --limit computeN` (the same apt work, then "
        "files, services, network, the controller's discover_hosts)",
        spread(fresh_s, digits=1) + f" = {ratio:.2f}x the floor",
        "≤ 1.0x",
        ratio <= 1.0,
    )
    section.add(
        "pairs (floor, stackwright)",
        ", ".join(f"({a:.1f}, {b:.1f})" for a, b in zip(floor_s, fresh_s, strict=True)),
    )
    section.add(
        "with node preparation's full-upgrade on both sides: floor `update && full-upgrade && install` "
        "vs `apply --yes --limit computeN` (the default)",
        f"{floor_up:.1f} s vs {fresh_up:.1f} s = {fresh_up / floor_up:.2f}x (1 pair)",
    )
    section.add(
        "the floor's install with plain `apt-get install` (postinsts start services; nova-compute "
        "then waits for a conductor it cannot reach)",
        f"{plain:.1f} s",
    )


# ---------------------------------------------------------------- scale-out and the Ansible peer

PERF = """# benchmarks/run.py scale and peer stages: a lab of their own
release: zed
networks:
  management: {{cidr: 10.150.10.0/24}}
  data:       {{cidr: 10.160.20.0/24}}
  external:   {{cidr: 192.168.150.0/24, gateway: 192.168.150.1}}
tenant_network_type: gre
virt_type: auto
nodes:
  pctl: {{roles: [controller], management: 10.150.10.11, external: 192.168.150.11}}
  pnet: {{roles: [network], management: 10.150.10.12, data: 10.160.20.12, external: 192.168.150.12}}
{computes}"""


def perf_address(n: int) -> str:
    return f"10.150.10.{20 + n}"


def perf_lab(computes: int) -> Path:
    path = WORK / "perf.yaml"
    WORK.mkdir(parents=True, exist_ok=True)
    path.write_text(
        PERF.format(
            computes="".join(
                f"  pc{n}: {{roles: [compute], management: {perf_address(n)}, data: 10.160.20.{20 + n}}}\n"
                for n in range(1, computes + 1)
            )
        )
    )
    return path


def stage_scale(report: Report, runs: int, perf: Path) -> None:
    section = report.section(
        "Scale-out: 1 vs 4 compute nodes from bare, in parallel",
        ".venv/bin/python benchmarks/run.py --only scale",
    )
    ones: list[float] = []
    fours: list[float] = []
    one_cpu: list[float] = []  # CPU-s of the one node
    four_cpu: list[float] = []  # CPU-s of each of the four nodes
    bounds: list[float] = []  # all lab hosts' CPU-s of a 4-node run over all CPUs: its fastest finish
    servers = ["pctl", "pnet"]
    cpus = os.cpu_count() or 1

    def converge(
        label: str, hosts: list[str], accounting: ProcessAccounting | None = None
    ) -> tuple[float, HostCpu]:
        waited, share = settle()
        quiet = "settled" if share <= SETTLED_SHARE else "NOT settled"
        with CpuSampler() as cpu, HostCpu() as host_cpu, accounting or contextlib.nullcontext():
            seconds = stackwright("apply", str(perf), "--yes", "--limit", ",".join(hosts))[0]
        section.add(
            f"{label} ({','.join(hosts)})",
            f"{seconds:.1f} s; {cpu.summary()}; {host_cpu.summary(hosts, servers)}; "
            f"lab {quiet} before it ({share:.0%} of a CPU after {waited:.0f} s)",
        )
        return seconds, host_cpu

    for r in range(runs):
        base = 1 + 5 * r
        one = [f"pc{base}"]
        accounting = ProcessAccounting(WORK / "pacct") if r == 0 else None
        seconds, host_cpu = converge(f"run {r + 1}: 1 node", one, accounting)
        if accounting is not None:
            cpu_profile(report, accounting, host_cpu.of(one)[0], one[0])
        ones.append(seconds)
        one_cpu += host_cpu.of(one)
        four = [f"pc{base + k}" for k in range(1, 5)]
        seconds, host_cpu = converge(f"run {r + 1}: 4 nodes", four)
        fours.append(seconds)
        four_cpu += host_cpu.of(four)
        bounds.append(sum(host_cpu.seconds.values()) / cpus)
    ratio = statistics.median(fours) / statistics.median(ones)
    section.add("1 compute node", spread(ones, digits=1))
    section.add("4 compute nodes in parallel", spread(fours, digits=1))
    section.add(
        "CPU-s one compute node's converge costs on its host: alone / one of four at once",
        f"median {statistics.median(one_cpu):.0f} / {statistics.median(four_cpu):.0f}",
        "≤ 60",
        statistics.median(one_cpu) <= 60 and statistics.median(four_cpu) <= 60,
    )
    bound = statistics.median(bounds)
    section.add(
        f"fastest the 4-node run can be here: all lab hosts' CPU-s during it / {cpus} CPUs",
        f"median {bound:.0f} s = {bound / statistics.median(ones):.2f}x one node",
    )
    to_bound = statistics.median(fours) / bound
    section.add(
        "4 / 1 (and the 4-node run against that bound)",
        f"{ratio:.2f}x ({to_bound:.2f}x the bound)",
        "≤ 2x, or ≤ 1.15x the bound where 2x is below it",
        ratio <= 2 or to_bound <= 1.15,
    )


def cpu_profile(report: Report, accounting: ProcessAccounting, host_s: float, host: str) -> None:
    """Where the first 1-node run's CPU-seconds went, per command (pacct.py)."""
    section = report.section(
        "Scale-out: where a compute node's CPU-seconds go",
        ".venv/bin/python benchmarks/run.py --only scale-profile",
    )
    section.notes.append(
        f"The first 1-node run of the scale stage ({host}), with the kernel's process accounting on: "
        "every process that exited during the converge, machine-wide (the controller's and network "
        "node's own short commands included; the services left running are not: they have not "
        "exited), each process's own CPU (user + system), not its children's. Command names are "
        "the kernel's 15 characters (`nova-compute.po` is that package's postinst). This lab is "
        "Zed on Debian 12 (python3.11 on the hosts); this machine's own Python processes (the CLI, "
        "the lab's apt proxy) are named `python`."
    )
    section.add(f"CPU-s charged to {host} (cpu.py, every process of the host)", f"{host_s:.0f}")
    section.add("CPU-s of the processes that exited during the run, all", f"{accounting.total_s:.0f}")
    for root in ("dpkg", "apt-get", "stackwright"):
        tree = accounting.under(root)
        section.add(
            f"… of which `{root}` and everything it ran",
            f"{sum(r.cpu_s for r in tree):.0f} ({len(tree)} processes)",
        )
    for row in accounting.by_command()[:12]:
        section.add(f"`{row.command}`", f"{row.cpu_s:.1f} CPU-s, {row.processes} processes")
    for row in accounting.by_command(accounting.under("dpkg"))[:12]:
        section.add(f"under dpkg: `{row.command}`", f"{row.cpu_s:.1f} CPU-s, {row.processes} processes")
    # every record, for a closer look than the table (.benchmarks/ is not committed)
    raw = [dataclasses.asdict(record) for record in accounting.records]
    (ROOT / ".benchmarks").mkdir(exist_ok=True)
    (ROOT / ".benchmarks" / f"pacct-{host}.json").write_text(json.dumps(raw))


def ansible_playbook() -> Path:
    exe = ANSIBLE_VENV / "bin" / "ansible-playbook"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(ANSIBLE_VENV)], check=True)
        subprocess.run(
            [str(ANSIBLE_VENV / "bin" / "pip"), "install", "-q", f"ansible=={ANSIBLE_VERSION}"], check=True
        )
    return exe


def stage_peer(report: Report, runs: int, perf: Path, first: int) -> None:
    """Hosts pc<first>.. : Ansible converges the odd ones of each pair, stackwright the even."""
    section = report.section(
        "Peer: the same compute node by an Ansible playbook and by stackwright",
        ".venv/bin/python benchmarks/run.py --only peer",
    )
    playbook_exe = ansible_playbook()
    version = timed([str(playbook_exe), "--version"])[1].splitlines()[0]
    here = ROOT / "benchmarks" / "ansible_peer"
    env = {**os.environ, "ANSIBLE_CONFIG": str(here / "ansible.cfg")}

    def playbook(host: str) -> list[str]:
        n = int(host.removeprefix("pc"))
        out = WORK / f"ansible-{host}"
        subprocess.run([sys.executable, str(here / "render_vars.py"), str(perf), host, str(out)], check=True)
        hosts = WORK / f"ansible-{host}.ini"
        hosts.write_text(
            f"[compute]\n{host} ansible_host={perf_address(n)}\n"
            "[controller]\npctl ansible_host=10.150.10.11\n"
            f"[all:vars]\nansible_user=root\nansible_ssh_private_key_file={LAB_KEY}\n"
        )
        return [str(playbook_exe), "-i", str(hosts), str(here / "compute.yml"), "-e", f"@{out / 'vars.yml'}"]

    a_fresh: list[float] = []
    s_fresh: list[float] = []
    pairs = [(f"pc{first + 2 * r}", f"pc{first + 2 * r + 1}") for r in range(runs)]
    for r, (a_host, s_host) in enumerate(pairs):

        def by_ansible(a_host: str = a_host) -> None:
            a_fresh.append(timed(playbook(a_host), env=env)[0])

        def by_stackwright(s_host: str = s_host) -> None:
            s_fresh.append(stackwright("apply", str(perf), "--yes", "--limit", s_host)[0])

        for step in (by_ansible, by_stackwright) if r % 2 == 0 else (by_stackwright, by_ansible):
            step()
    ratio = statistics.median(s_fresh) / statistics.median(a_fresh)
    section.add(
        f"fresh, Ansible ({version}; pipelining, ControlPersist, no fact gathering)",
        spread(a_fresh, digits=1),
    )
    section.add(
        "fresh, stackwright", spread(s_fresh, digits=1) + f" = {ratio:.2f}x Ansible", "≤ 1x", ratio <= 1
    )
    a_host, s_host = pairs[-1]
    for upgrade in (False, True):
        a_noop: list[float] = []
        s_noop: list[float] = []
        for _ in range(max(runs, 5)):
            seconds, log = timed(playbook(a_host) + ([] if upgrade else ["--skip-tags", "upgrade"]), env=env)
            changed = [int(c) for c in re.findall(r"changed=(\d+)", log)]
            if any(changed):
                raise CommandFailed(f"the Ansible no-op run changed something: {changed}\n{log[-3000:]}")
            a_noop.append(seconds)
            extra = [] if upgrade else ["--no-upgrade"]
            s_noop.append(stackwright("apply", str(perf), "--yes", "--limit", s_host, *extra)[0])
        how = "with node preparation (apt lists fresh)" if upgrade else "without the upgrade step"
        faster = statistics.median(a_noop) / statistics.median(s_noop)
        section.add(f"no-op, Ansible, {how}", spread(a_noop))
        section.add(
            f"no-op, stackwright, {how}",
            spread(s_noop) + f" = {faster:.1f}x faster",
            "≥ 3x faster",
            faster >= 3,
        )


def stage_perf_lab(report: Report, runs: int, stages: set[str]) -> None:
    scale_hosts = 5 * runs if stages & {"scale", "scale-profile"} else 0  # the profile is scale's run 1
    peer_hosts = 2 * runs if "peer" in stages else 0
    perf = perf_lab(scale_hosts + peer_hosts)
    try:
        base = report.section(
            "Scale and peer labs: controller and network node",
            ".venv/bin/python benchmarks/run.py --only scale,peer",
        )
        base.add(
            f"`lab up`, {2 + scale_hosts + peer_hosts} hosts",
            f"{stackwright('lab', 'up', str(perf))[0]:.1f} s",
        )
        base.add(
            "`apply --yes --limit pctl,pnet` (controller + network node from bare)",
            f"{stackwright('apply', str(perf), '--yes', '--limit', 'pctl,pnet')[0]:.1f} s",
        )
        if scale_hosts:
            stage_scale(report, runs, perf)
            # The nodes of the scale stage would keep the machine busy (agents polling): stop them.
            for n in range(1, scale_hosts + 1):
                ssh(
                    f"pc{n}",
                    "systemctl stop nova-compute neutron-openvswitch-agent libvirtd "
                    "stackwright-veth-csum ovs-vswitchd ovsdb-server",
                    timeout=120,
                )
        if peer_hosts:
            stage_peer(report, runs, perf, first=scale_hosts + 1)
    finally:
        lab_down(perf)


# ---------------------------------------------------------------- the report


def _split_block(block: str) -> tuple[str, list[str]]:
    header, *sections = block.split("\n### ")
    return header, ["### " + s.rstrip("\n") + "\n" for s in sections]


def _command_of(section: str) -> str:
    lines = section.splitlines()
    return lines[lines.index("```") + 1] if "```" in lines else lines[0]


def _provenance(header: str) -> str:
    date = re.search(r"Generated by `benchmarks/run.py` \(([^,]+),", header)
    commit = re.search(r"stackwright: commit (\S+)", header)
    return f"{date.group(1) if date else 'an earlier run'}, commit {commit.group(1) if commit else 'unknown'}"


def merge_block(old: str, new: str) -> str:
    """The new run's sections replace those measured by the same command; the sections of stages
    this run did not measure stay, each marked with the run and commit it comes from."""
    old_header, old_sections = _split_block(old)
    new_header, new_sections = _split_block(new)
    fresh = {_command_of(s): s for s in new_sections}
    kept_from = _provenance(old_header)
    known = {_command_of(s) for s in old_sections}
    merged: list[str] = []
    for section in old_sections:
        command = _command_of(section)
        if command in fresh:
            merged.append(fresh.pop(command))
            # stages new to the document go after the last stage this run replaced
            merged += [fresh.pop(c) for c in list(fresh) if c.startswith(command + "-") and c not in known]
        elif section.startswith("### ") and "_Kept from the run of " not in section:
            title, _, body = section.partition("\n")
            mark = f"_Kept from the run of {kept_from}: this run did not measure it._"
            merged.append(f"{title}\n\n{mark}\n{body}")
        else:
            merged.append(section)
    merged += fresh.values()
    return new_header.rstrip("\n") + "\n\n" + "\n".join(merged)


def write_doc(markdown: str) -> None:
    text = DOC.read_text() if DOC.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text = text.replace("# Benchmarks\n", f"# Benchmarks\n\n{BEGIN}\n{END}\n", 1)
    head, _, rest = text.partition(BEGIN)
    old, _, tail = rest.partition(END)
    block = merge_block(old.strip("\n"), markdown) if old.strip() else markdown
    DOC.write_text(f"{head}{BEGIN}\n{block.rstrip(chr(10))}\n\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="samples of each fresh-converge figure (≥ 3)")
    parser.add_argument("--only", default="plan,lab,cloud,cloud-zed,scale,peer,fleet,storage,ui,tempest")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run benchmarks/run.py as root (lab hosts)")
    stages = set(args.only.split(","))
    report = Report()
    facts = machine_facts()
    started = time.strftime("%Y-%m-%d %H:%M")
    t0 = time.monotonic()
    runners: list[tuple[set[str], Callable[[], None]]] = [
        ({"plan"}, lambda: stage_plan(report, args.runs)),
        ({"lab"}, lambda: stage_lab(report, args.runs)),
        ({"cloud"}, lambda: stage_cloud(report, args.runs)),
        ({"cloud-zed"}, lambda: stage_cloud(report, args.runs, "seed-zed.yaml", floor=False)),
        ({"scale", "scale-profile", "peer"}, lambda: stage_perf_lab(report, args.runs, stages)),
        ({"fleet"}, lambda: stage_fleet(report)),
        ({"storage"}, lambda: stage_storage(report)),
        ({"ui", "tempest"}, lambda: stage_api_cloud(report, args.runs, stages)),
    ]
    interrupted = False
    for names, run in runners:
        if not stages & names or interrupted:
            continue
        before = len(report.sections)
        try:
            run()
        except Exception as exc:  # a failed stage is reported; the others still run
            if len(report.sections) == before:
                report.section(f"Stage {'/'.join(sorted(names))}", "")
            report.sections[-1].notes.append(f"**Stage failed:** {type(exc).__name__}: {exc}")
            print(f"stage {'/'.join(sorted(names))} failed: {exc}", file=sys.stderr)
        except KeyboardInterrupt:  # SIGINT (e.g. `timeout -s INT`): keep what was measured, stop
            if len(report.sections) == before:
                report.section(f"Stage {'/'.join(sorted(names))}", "")
            report.sections[-1].notes.append("**Stage interrupted** (SIGINT) before its end.")
            interrupted = True
        # Written after every stage, so an interrupted run keeps what it measured.
        markdown = report.markdown(facts, started, time.monotonic() - t0)
        (ROOT / ".benchmarks").mkdir(exist_ok=True)
        (ROOT / ".benchmarks" / "report.json").write_text(report.json())
        if not args.no_write:
            write_doc(markdown)
    print("\n" + report.markdown(facts, started, time.monotonic() - t0))
    if not args.no_write:
        print(f"written: {DOC}")


if __name__ == "__main__":
    main()
