"""`lab down` leaves nothing behind, checked by inspecting the machine; a second one is fine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stackwright.lab import processes
from stackwright.lab.hosts import is_mounted
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
    second = run_cli("down", str(DOWN_CHECK))
    assert second.returncode == 0, second.stderr
