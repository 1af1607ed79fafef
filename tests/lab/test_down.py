"""`lab down` leaves nothing behind, checked by inspecting the machine; a second one is fine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stackwright.lab import processes
from stackwright.lab.hosts import is_mounted
from stackwright.lab.machine import INCLUDE_LINE, MACHINE_STATE, SSH_CONFIG, other_labs
from stackwright.lab.network import table_exists
from tests.lab.conftest import DOWN_CHECK, layout_of, require_lab, run_cli

pytestmark = pytest.mark.lab


def _links() -> set[str]:
    return {p.name for p in Path("/sys/class/net").iterdir()}


def test_down_leaves_no_process_bridge_veth_mount_or_proxy() -> None:
    require_lab()
    layout = layout_of(DOWN_CHECK)
    links_before = _links()
    try:
        up = run_cli("up", str(DOWN_CHECK), "--ensure-packages")
        assert up.returncode == 0, up.stderr
        host = layout.hosts[0]
        assert str(host.management) in (DOWN_CHECK.parent / "known_hosts").read_text()
        state = json.loads(layout.state_file.read_text())
        pids = [state["proxy_pid"], state["hosts"][host.name]["supervisor_pid"], processes.nspawn_pid(host)]
        assert all(pids) and processes.lab_processes(layout)
        assert is_mounted(host.root)
        made = _links() - links_before
        assert {b.name for b in layout.bridges} | {lk.veth for lk in host.links} <= made
    finally:
        first = run_cli("down", str(DOWN_CHECK))
    assert first.returncode == 0, first.stderr
    assert "nothing left behind" in first.stderr
    # inspect the machine ourselves, not only through `down`'s own check
    assert processes.lab_processes(layout) == []
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/cmdline").read_bytes() == b""
    assert _links() - links_before == set()
    assert not is_mounted(host.root)
    assert str(layout.dir) not in Path("/proc/self/mountinfo").read_text()
    assert not table_exists(layout)
    assert not layout.dir.exists()
    assert not layout.ssh_config.exists()
    # its hosts' keys are gone from the known_hosts beside the inventory (lab up put them there)
    known = DOWN_CHECK.parent / "known_hosts"
    assert not known.exists() or str(host.management) not in known.read_text()
    if not other_labs(layout.dir):  # the last lab: what lab up changed on this machine is back
        assert not MACHINE_STATE.exists()
        assert INCLUDE_LINE not in (SSH_CONFIG.read_text() if SSH_CONFIG.exists() else "")
    second = run_cli("down", str(DOWN_CHECK))
    assert second.returncode == 0, second.stderr


def test_up_refuses_a_network_that_collides_with_this_machine(tmp_path: Path) -> None:
    require_lab()
    from stackwright.lab.network import machine_addresses

    taken = next((i for dev, i in machine_addresses() if dev != "lo" and i.network.prefixlen <= 29), None)
    if taken is None:
        pytest.skip("this machine has no IPv4 network with room for a test inventory")
    net = taken.network
    free = [str(a) for a in net.hosts() if a != taken.ip][-3:]
    inv = tmp_path / "collides.yaml"
    inv.write_text(
        "release: zed\nnetworks:\n"
        f"  management: {{cidr: {net}}}\n"
        "  data: {cidr: 10.252.2.0/24}\n  external: {cidr: 10.252.3.0/24}\n"
        f"nodes:\n  solo: {{roles: [controller, network, compute], management: {free[0]}, "
        "data: 10.252.2.10, external: 10.252.3.10}\n"
    )
    links_before = _links()
    proc = run_cli("up", str(inv))
    assert proc.returncode == 2, proc.stderr
    assert f"collides with {taken}" in proc.stderr and "change networks.management.cidr" in proc.stderr
    assert _links() == links_before


def test_down_also_removes_a_host_the_inventory_dropped_since_up(tmp_path: Path) -> None:
    require_lab()
    both = (
        "release: zed\nnetworks:\n  management: {cidr: 10.253.1.0/24}\n  data: {cidr: 10.253.2.0/24}\n"
        "  external: {cidr: 10.253.3.0/24}\nnodes:\n"
        "  keeper: {roles: [controller, network, compute], management: 10.253.1.10, data: 10.253.2.10,"
        " external: 10.253.3.10}\n"
    )
    dropped = "  dropped: {roles: [compute], management: 10.253.1.11, data: 10.253.2.11}\n"
    inv = tmp_path / "shrinks.yaml"
    inv.write_text(both + dropped)
    grown = layout_of(inv)
    try:
        up = run_cli("up", str(inv))
        assert up.returncode == 0, up.stderr
        assert is_mounted(grown.host("dropped").root)
        inv.write_text(both)  # the user removes a node, then tears the lab down
        down = run_cli("down", str(inv))
        assert down.returncode == 0, down.stderr
    finally:
        inv.write_text(both + dropped)
        run_cli("down", str(inv))
    assert processes.lab_processes(grown) == []
    assert str(grown.dir) not in Path("/proc/self/mountinfo").read_text()
    assert not grown.dir.exists()
