"""Lab fixtures: real systemd-nspawn hosts on this machine (tests marked `@pytest.mark.lab`).

`seed_lab` (session scope) brings up `examples/seed.yaml`'s three hosts once, with
`stackwright lab up --ensure-packages`, and at the end of the session runs `lab down` and asserts
nothing is left behind (no host process, bridge, veth, mount, nft table or proxy). Reuse it in any
test that needs hosts; a test that breaks a host must put it back (or use a lab of its own):

    @pytest.mark.lab
    def test_something(seed_lab: SeedLab) -> None:
        seed_lab.hosts                                  # ["controller", "network", "compute1"]
        seed_lab.inventory                              # Path to examples/seed.yaml
        out = seed_lab.check("compute1", "ip -br addr")  # stdout; AssertionError if exit != 0
        proc = seed_lab.exec("network", "systemctl is-active ovs-vswitchd")  # CompletedProcess
        seed_lab.cli("reboot", "compute1")              # `stackwright lab reboot seed.yaml compute1`
        seed_lab.ssh_config                             # ssh -F file (Host blocks for every node)

Hosts are also reachable as plain `ssh compute1` (root's ~/.ssh/config includes the lab's file).

Skips: only when this machine cannot run the lab (not root; systemd-nspawn missing and no apt-get
to install it). Under CI=true those are failures instead: lab tests never skip in CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stackwright.inventory import load_inventory
from stackwright.lab.down import down, leftovers
from stackwright.lab.layout import STATE_ROOT, LabLayout
from stackwright.lab.lock import file_lock
from stackwright.lab.machine import INCLUDE_LINE, MACHINE_STATE, SSH_CONFIG, other_labs
from stackwright.lab.ssh import ssh_argv
from stackwright.lab.up import up

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "seed.yaml"
SESSION_WAIT = 1800.0  # seconds to wait for another test session's lab to be torn down
DOWN_CHECK = Path(__file__).resolve().parent / "inventories" / "down-check.yaml"


def lab_unavailable() -> str | None:
    """Why this machine cannot run lab tests, or None if it can."""
    if os.geteuid() != 0:
        return "lab tests need root (systemd-nspawn, bridges, mounts)"
    if shutil.which("systemd-nspawn") is None and shutil.which("apt-get") is None:
        return "systemd-nspawn is missing and apt-get is not there to install it"
    return None


def require_lab() -> None:
    reason = lab_unavailable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: lab tests must run, but {reason}")
    pytest.skip(reason)


def layout_of(path: Path) -> LabLayout:
    return LabLayout.of(load_inventory(path).model, path)


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`stackwright lab ARGS...` in a child process (exit code and output as a user sees them)."""
    argv = [sys.executable, "-c", "from stackwright.lab.cli import lab_app; lab_app()", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


@dataclass(frozen=True)
class SeedLab:
    inventory: Path
    layout: LabLayout

    @property
    def hosts(self) -> list[str]:
        """Every node of the inventory as it is now (the cloud tests grow it: compute2, ...)."""
        return list(load_inventory(self.inventory).model.nodes)

    @property
    def ssh_config(self) -> Path:
        return self.layout.ssh_config

    def exec(self, host: str, command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a shell command in `host` over SSH; never raises on its exit code."""
        argv = ssh_argv(self.layout, host, [command])
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)

    def check(self, host: str, command: str, timeout: float = 120) -> str:
        """Like exec, but the command must succeed; returns its stdout."""
        proc = self.exec(host, command, timeout)
        assert proc.returncode == 0, f"{host}: `{command}` exited {proc.returncode}: {proc.stderr.strip()}"
        return proc.stdout

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """`stackwright lab COMMAND <seed.yaml> ARGS...`"""
        command, *rest = args
        return run_cli(command, str(self.inventory), *rest, timeout=timeout)


def _quiet(msg: str) -> None:
    pass


# The tests' own copy of examples/seed.yaml (a fixed path, so the lab id and its lock are the same in
# every session): the cloud tests grow it by a node (compute2) and keep passwords.yaml beside it.
TEST_INVENTORY = STATE_ROOT / "test-inventories" / "seed.yaml"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `cloud` converge the seed lab into an OpenStack cloud (moving addresses onto
    OVS bridges); they run after every other test that uses the plain lab hosts."""
    items.sort(key=lambda item: item.get_closest_marker("cloud") is not None)


@pytest.fixture(scope="session")
def seed_lab() -> Iterator[SeedLab]:
    require_lab()
    TEST_INVENTORY.parent.mkdir(parents=True, exist_ok=True)
    for stale in TEST_INVENTORY.parent.glob("*.yaml"):
        if stale.name != "passwords.yaml":
            stale.unlink()
    shutil.copy(SEED, TEST_INVENTORY)
    layout = layout_of(TEST_INVENTORY)
    # Two test sessions on one checkout would share (and tear down) the same lab: take turns.
    session = STATE_ROOT / "locks" / f"{layout.lab_id}.test-session.lock"
    with file_lock(session, "another test session using this lab", timeout=SESSION_WAIT):
        try:
            up(layout, ensure_packages=True, progress=_quiet)
            yield SeedLab(TEST_INVENTORY, layout)
        finally:
            # STACKWRIGHT_KEEP_LAB=1 keeps the hosts for a developer to inspect (never in CI).
            if os.environ.get("STACKWRIGHT_KEEP_LAB") != "1" or os.environ.get("CI") == "true":
                final = layout_of(TEST_INVENTORY)  # tests may have grown the inventory (compute2)
                down(final, progress=_quiet)
                left = leftovers(final)
                assert not left, f"lab down left these behind: {left}"
                if not other_labs(final.dir):  # the last lab: this machine is as before `lab up`
                    assert not MACHINE_STATE.exists(), MACHINE_STATE.read_text()
                    assert INCLUDE_LINE not in (SSH_CONFIG.read_text() if SSH_CONFIG.exists() else "")
