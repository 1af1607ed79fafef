"""Resilience on the session's Epoxy cloud; runs after test_cloud.py and test_doctor.py.

Interrupted applies: a fresh compute node (compute3) joins the cloud from a bare host, its
applies interrupted at three points in turn (file writes, a service start, the controller's
discover_hosts); with test_cloud.py's two (the whole cluster killed during the nova
db sync, compute2's connection cut while dpkg runs) that makes five points across the phases.
Each time the same plain apply converges and `verify` passes. Then hosts broken in ways a user
meets (a wrong SSH key, the wrong Debian release, a full disk) fail alone, named, while another
host converges; every seed node rebooted comes back by itself and the smoke VM boots; and, last,
nothing of passwords.yaml shows in any output or log of the session, or in a world-readable file
or command line on any host.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackwright.lab.processes import nspawn_pid
from stackwright.lab.supervisor import children
from tests.lab.cli import OUTPUTS, SESSION_START, cli_argv, stackwright
from tests.lab.cloudkit import (
    add_compute,
    apply_json,
    assert_compute_node,
    expected_plan,
    hypervisors,
    secret_values,
    verify_json,
    world_readable_leaks,
)
from tests.lab.conftest import SeedLab, layout_of
from tests.lab.figures import append, record
from tests.lab.interrupt import Interrupted, Point, interrupted_apply

pytestmark = [pytest.mark.lab, pytest.mark.cloud]
ROOT = Path(__file__).resolve().parents[2]


def test_ctrl_c_stops_every_host_after_its_step_and_releases_the_locks(epoxy_cloud: SeedLab) -> None:
    argv = cli_argv("apply", str(epoxy_cloud.inventory), "--yes", "--json", "--verbose", "--no-upgrade")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("network: write "):
            proc.send_signal(signal.SIGINT)
            break
    rest_err = proc.stderr.read()
    out = proc.stdout.read() if proc.stdout else ""
    proc.wait(timeout=120)
    err = "".join(lines) + rest_err
    OUTPUTS.extend((out, err))
    assert proc.returncode == 1, err[-3000:]
    assert "SIGINT: every host stops after the step it is in" in err and "Traceback" not in err
    hosts = json.loads(out)["hosts"]
    stopped = [h for h, r in hosts.items() if not r["ok"]]
    assert "network" in stopped
    assert all("stopped by SIGINT before this step" in hosts[h]["error"]["output"] for h in stopped)
    for host in epoxy_cloud.hosts:
        assert epoxy_cloud.exec(host, "test -e /run/stackwright.lock").returncode == 1, host
    report = apply_json(epoxy_cloud, "--no-upgrade")
    assert all(r["ok"] and r["changed"] == 0 for r in report["hosts"].values()), report


def test_new_compute_node_cut_in_three_phases_then_converges(epoxy_cloud: SeedLab) -> None:
    """compute3 joins from bare and is cut three times, each apply resuming what the last left:
    its connection among its file writes, its connection again while nova-compute starts, then the
    whole apply killed while the controller maps it to its cell (discover_hosts). The same apply
    once more converges it, as the seed describes a compute node, mapped. (One node cut three
    times in a row, not three nodes cut once each: the same points, and a third of the installs.)"""
    host = add_compute(epoxy_cloud, 3)
    limit = ["--limit", host]
    plan = expected_plan(epoxy_cloud).hosts[host]
    paths = sorted(plan.files())
    runs: list[tuple[Interrupted, float]] = []
    in_place: list[str] = []  # after the first cut
    for point in (
        Point(host, "write ", "ssh", nth=6),
        Point(host, "service nova-compute ", "ssh", running="systemctl start nova-compute"),
        Point(
            "controller",
            "run: map new compute nodes",
            "process",
            running="nova-manage cell_v2 discover_hosts",
        ),
    ):
        start = time.monotonic()
        runs.append((interrupted_apply(epoxy_cloud, limit, point), time.monotonic() - start))
        cut = runs[-1][0]
        assert "Traceback" not in cut.stderr
        if point.how == "ssh":
            assert cut.returncode == 1, cut.stderr[-3000:]
            report = json.loads(cut.stdout)["hosts"]
            assert f"SSH connection to {host} lost" in report[host]["error"]["output"], report[host]
            assert "run apply again" in report[host]["error"]["hint"]
            assert "controller" not in report  # discover_hosts waits for the compute node
        else:
            assert cut.returncode == -9 and "discover_hosts" in cut.was_running
        if len(runs) == 1:
            in_place = [
                p for p in paths if epoxy_cloud.exec(host, f"cat {p}").stdout == plan.files()[p].content
            ]
            assert 0 < len(in_place) < len(paths), in_place
    start = time.monotonic()
    report = apply_json(epoxy_cloud, *limit)
    resume_s = time.monotonic() - start
    assert report["ok"], report
    assert_compute_node(epoxy_cloud, host)
    assert epoxy_cloud.exec(host, "ls /etc/nova/*.stackwright-new 2>/dev/null").stdout == ""
    computes = [n for n in epoxy_cloud.hosts if n.startswith("compute")]
    assert hypervisors(verify_json(epoxy_cloud, "--wait", "180")) == {
        f"hypervisor:{c}": True for c in computes
    }
    for number, (cut, seconds) in enumerate(runs):
        files = f" ({len(in_place)} of {len(paths)} files in place)" if number == 0 else ""
        resumed = sum(s for _, s in runs[number + 1 :]) + resume_s
        append(
            "reliability",
            "interrupted applies",
            {"host": host, "cut": f"{cut.cuts[0].point.how} at `{cut.cut_at}`{files}",
             "in flight": cut.was_running, "killed run s": round(seconds, 1),
             "re-applies to the end s": round(resumed, 1), "re-apply ok": True},
        )  # fmt: skip


@contextlib.contextmanager
def wrong_ssh_key(lab: SeedLab, host: str) -> Iterator[None]:
    """The host accepts another key than ours (edited from this machine: we cannot log in)."""
    keys = layout_of(lab.inventory).host(host).root / "root/.ssh/authorized_keys"
    saved = keys.read_text()
    keys.write_text(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBsVxd3ZrX6LmFhQvYkbb7dVn0u6kGQeGmDqwH0m0TYn other@key\n"
    )
    try:
        yield
    finally:
        keys.write_text(saved)


@contextlib.contextmanager
def debian_release(lab: SeedLab, host: str, codename: str) -> Iterator[None]:
    lab.check(
        host,
        f"cp -p /usr/lib/os-release /run/os-release.saved && sed -i 's/trixie/{codename}/g' "
        "/usr/lib/os-release",
    )
    try:
        yield
    finally:
        lab.check(host, "mv -f /run/os-release.saved /usr/lib/os-release")


@contextlib.contextmanager
def full_filesystem(lab: SeedLab, host: str, mount: str) -> Iterator[None]:
    """A filesystem of the host filled to the last block (a 2 MB tmpfs mounted from this machine
    into the host's mount namespace: a container cannot mount one itself)."""
    nspawn = nspawn_pid(layout_of(lab.inventory).host(host))
    assert nspawn is not None
    init = children(nspawn)[0]
    enter = ["nsenter", "-t", str(init), "-m", "--"]
    subprocess.run(
        [
            *enter,
            "sh",
            "-c",
            f"mount -t tmpfs -o size=2m sw-full {mount} && "
            f"dd if=/dev/zero of={mount}/fill bs=64k 2>/dev/null; true",
        ],
        check=True,
        timeout=60,
    )
    try:
        assert "100%" in lab.check(host, f"df -P {mount}")
        yield
    finally:
        subprocess.run([*enter, "umount", mount], check=False, timeout=60)


def test_broken_hosts_fail_alone_naming_the_host_and_the_cause(epoxy_cloud: SeedLab) -> None:
    """A wrong SSH key, the wrong Debian release and a full disk, each on its own compute node,
    in one apply with the network node: three named failures, the network node converges."""
    with (
        wrong_ssh_key(epoxy_cloud, "compute1"),
        debian_release(epoxy_cloud, "compute2", "bullseye"),
        full_filesystem(epoxy_cloud, "compute3", "/var/cache/apt/archives"),
    ):
        proc = stackwright(
            "apply",
            str(epoxy_cloud.inventory),
            "--yes",
            "--json",
            "--no-upgrade",
            "--limit",
            "compute1,compute2,compute3,network",
        )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    hosts = json.loads(proc.stdout)["hosts"]
    assert hosts["network"]["ok"] and hosts["network"]["changed"] == 0
    key = hosts["compute1"]["error"]["output"]
    assert "compute1 (10.10.10.53)" in key and "Authentication" in key, key
    release = hosts["compute2"]["error"]["output"]
    assert "Debian bullseye, but release epoxy needs Debian trixie" in release, release
    disk = hosts["compute3"]["error"]["output"]
    assert "/var/cache/apt/archives has 0 MB free — free space on compute3" in disk, disk
    record(
        "reliability",
        "broken hosts",
        {h: hosts[h]["error"]["output"] for h in ("compute1", "compute2", "compute3")},
    )
    # put back: the same apply converges them, nothing to change
    report = apply_json(epoxy_cloud, "--no-upgrade", "--limit", "compute1,compute2,compute3")
    assert all(r["ok"] and r["changed"] == 0 for r in report["hosts"].values()), report


def test_every_seed_node_rebooted_comes_back_and_the_smoke_vm_boots(epoxy_cloud: SeedLab) -> None:
    """`lab reboot` each node; addresses, bridges, tunnels and services come back without us."""
    back = {}
    for host in ("controller", "network", "compute1", "storage1"):
        before = epoxy_cloud.check(host, "cat /proc/sys/kernel/random/boot_id")
        start = time.monotonic()
        proc = epoxy_cloud.cli("reboot", host, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        back[host] = round(time.monotonic() - start, 1)
        assert epoxy_cloud.check(host, "cat /proc/sys/kernel/random/boot_id") != before
    start = time.monotonic()
    # verify's own lines prove Ceph back (health, every OSD up, the pools); the volume phases are
    # test_cloud's
    report = verify_json(epoxy_cloud, "--smoke", "--no-volumes", "--wait", "600", timeout=1800)
    assert report["smoke"]["ok"], report["smoke"]
    assert report["smoke"]["lease"] == report["smoke"]["fixed_ip"]
    record(
        "reliability",
        "reboot",
        {
            "back with SSH and addresses s": back,
            "verify --smoke after s": round(time.monotonic() - start, 1),
        },
    )
    apply = apply_json(epoxy_cloud, "--no-upgrade")
    assert all(r["ok"] and r["changed"] == 0 for r in apply["hosts"].values()), apply


def test_no_secret_in_a_world_readable_file_or_command_line_on_any_host(epoxy_cloud: SeedLab) -> None:
    """After converges, verify, smoke, doctor and every break above: scan each host."""
    assert world_readable_leaks(epoxy_cloud, secret_values(epoxy_cloud)) == {}
    record("reliability", "hosts scanned for secrets", len(epoxy_cloud.hosts))


def test_no_secret_in_any_output_or_log(epoxy_cloud: SeedLab) -> None:
    """Every stackwright output of the session (apply, plan --live, verify, smoke, doctor, lab)
    and every apply log it wrote."""
    logs = [
        p
        for p in (Path.home() / ".local/state/stackwright").glob("*.log")
        if p.stat().st_mtime > SESSION_START
    ]
    texts = [*OUTPUTS, *(log.read_text() for log in logs)]
    texts.append(stackwright("plan", str(epoxy_cloud.inventory), "--live").stdout)
    assert len(texts) > 50
    leaked = [value for value in secret_values(epoxy_cloud) if any(value in text for text in texts)]
    assert leaked == []
    record("reliability", "outputs and logs scanned for secrets", len(texts))
