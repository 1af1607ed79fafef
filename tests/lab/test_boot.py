"""Lab hosts boot cleanly every time, each in cgroups of its own (on Debian 12 and 13 bases); and
a host that already runs the other release's OpenStack is refused before anything changes.

Hosts once shared one cgroup tree (`/payload`, see lab/cgroups.py): their systemds raced on the
same unit cgroups and a host came up `degraded` now and then (systemd-network-generator exited
219/CGROUP). Here three hosts boot together, again and again, from `lab up` to `lab down`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stackwright.lab import processes
from stackwright.lab.cgroups import host_cgroups
from stackwright.lab.layout import LabLayout
from tests.lab.cli import stackwright
from tests.lab.conftest import layout_of, require_lab, run_cli

pytestmark = pytest.mark.lab

BOOT_CHECK = Path(__file__).resolve().parent / "inventories" / "boot-check.yaml"
CYCLES = 5
# nova-common as the other release ships it: (inventory's release, installed version, its release)
OTHER_RELEASES_NOVA = {"epoxy": ("2:26.2.0-1", "Zed"), "zed": ("2:31.0.0-6", "Epoxy")}


def _inventory(tmp_path: Path, release: str) -> Path:
    path = tmp_path / "boot-check.yaml"
    path.write_text(BOOT_CHECK.read_text().replace("release: epoxy", f"release: {release}"))
    return path


def _pid_namespace(pid: int) -> str:
    return str(Path(f"/proc/{pid}/ns/pid").readlink())


@pytest.mark.parametrize("release", ["epoxy", "zed"])
def test_hosts_boot_running_every_time_each_in_its_own_cgroups(tmp_path: Path, release: str) -> None:
    require_lab()
    inventory = _inventory(tmp_path, release)
    layout = layout_of(inventory)
    try:
        for cycle in range(CYCLES):
            up = run_cli("up", str(inventory), "--ensure-packages", timeout=900)
            assert up.returncode == 0, f"cycle {cycle}: {up.stderr[-2000:]}"
            for host in layout.hosts:
                state = run_cli("exec", str(inventory), host.name, "--", "sh", "-c",
                                "timeout 60 systemctl is-system-running --wait; "
                                "systemctl list-units --failed --plain --no-legend")  # fmt: skip
                assert state.stdout.split()[:1] == ["running"], f"cycle {cycle}, {host.name}: {state.stdout}"
            if cycle == 0:
                _assert_own_cgroups(layout)
            if cycle == CYCLES - 1:
                _assert_other_release_refused(inventory, release)
            down = run_cli("down", str(inventory))
            assert down.returncode == 0, f"cycle {cycle}: {down.stderr[-2000:]}"
    finally:
        run_cli("down", str(inventory))
    for host in layout.hosts:
        assert not any(p.exists() for p in host_cgroups(host.cgroup)), f"{host.name}'s cgroups left behind"


def _assert_own_cgroups(layout: LabLayout) -> None:
    """Each host's units sit under its own cgroups, which hold that host's processes only."""
    seen: dict[str, str] = {}
    for host in layout.hosts:
        assert processes.nspawn_pid(host) is not None
        own = host_cgroups(host.cgroup)
        assert own, "no cgroup hierarchy found"
        for cgroup in own:
            ssh_unit = cgroup / "payload" / "system.slice" / "ssh.service" / "cgroup.procs"
            pids = [int(p) for p in ssh_unit.read_text().split()]
            assert pids, f"{host.name}: no sshd in {ssh_unit}"
            namespaces = {_pid_namespace(p) for p in pids}
            assert len(namespaces) == 1, f"{host.name}: {ssh_unit} holds processes of several hosts"
            namespace = namespaces.pop()
            assert seen.setdefault(namespace, host.name) == host.name, (
                f"{host.name} shares {seen[namespace]}'s"
            )


def _assert_other_release_refused(inventory: Path, release: str) -> None:
    """A stand-in nova-common of the other release (a real package, made with dpkg-deb on the host)
    on boot3: `apply` refuses boot3 in preflight, in one line, before installing anything."""
    version, other = OTHER_RELEASES_NOVA[release]
    fake = (
        "set -e; mkdir -p /tmp/fake/DEBIAN; printf 'Package: nova-common\\nVersion: %s\\nArchitecture: all\\n"
        "Maintainer: test <test@example.invalid>\\nDescription: stand-in\\n' "
        f"'{version}' > /tmp/fake/DEBIAN/control\n"
        "dpkg-deb --build /tmp/fake /tmp/nova-common.deb >/dev/null; dpkg -i /tmp/nova-common.deb >/dev/null"
    )
    made = run_cli("exec", str(inventory), "boot3", "--", "sh", "-c", fake)
    assert made.returncode == 0, made.stderr
    proc = stackwright("apply", str(inventory), "--yes", "--limit", "boot3")
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    text = " ".join((proc.stdout + proc.stderr).split())
    assert f"(OpenStack {other}) is installed, but release {release} installs nova" in text, text
    assert "Traceback" not in proc.stderr
    status = run_cli(
        "exec", str(inventory), "boot3", "--", "dpkg-query", "-W", "-f=${db:Status-Abbrev}", "chrony"
    )
    assert not status.stdout.startswith("ii"), "apply installed packages on a refused host"
