"""Lab fixtures: real systemd-nspawn hosts on this machine (tests marked `@pytest.mark.lab`).

Shared clouds, converged once per session (a module run alone brings up what it needs):
- `seed_lab` (session scope) brings up `examples/seed.yaml`'s three Debian 13 hosts (release
  epoxy) once, with `stackwright lab up --ensure-packages`; tests on plain hosts use it first.
- `epoxy_cloud` (tests/lab/cloudkit.py) converges that lab into the Epoxy cloud, once: every test
  marked `cloud` (the cloud's features, doctor's faults, resilience) runs on it, after the
  plain-host tests (see `pytest_collection_modifyitems`).
- `zed_lab` brings up `examples/seed-zed.yaml`'s three Debian 12 hosts on addresses of their own
  (10.11.10.0/24, ...), so the Zed cloud of tests/lab/test_zed.py can live beside the Epoxy one;
  its inventory adds a package cache on the controller (the other hosts get no route to the mirror).
At the end of the session every lab is taken down (`lab down`), asserting nothing is left behind
(no host process, bridge, veth, mount, cgroup, nft table or proxy). A test that breaks a host
must put it back (or use a lab of its own):

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

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
SEED_ZED = ROOT / "examples" / "seed-zed.yaml"
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
# The Zed copy, in a directory of its own (its own passwords.yaml) and on addresses of its own.
ZED_INVENTORY = STATE_ROOT / "test-inventories" / "zed" / "seed-zed.yaml"
ZED_ADDRESSES = (("10.10.10.", "10.11.10."), ("10.20.20.", "10.21.20."), ("192.168.100.", "192.168.101."))
# The Zed cloud is also the package cache's: the controller caches every node's packages, and only
# it reaches the mirror (through the lab's apt proxy, at the management bridge's address).
ZED_PACKAGE_CACHE = "package_cache: {host: controller, upstream_proxy: 'http://10.10.10.1:3142'}\n"


@pytest.fixture(scope="session", autouse=True)
def figures() -> Iterator[None]:
    """Writes what the tests measured (tests/lab/figures.py) when the session ends."""
    from tests.lab.figures import write_all

    yield
    write_all()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `cloud` converge the seed lab into an OpenStack cloud (moving addresses onto
    OVS bridges); they run after every other test that uses the plain lab hosts."""
    items.sort(key=lambda item: item.get_closest_marker("cloud") is not None)


def _session_lab(inventory: Path) -> Iterator[SeedLab]:
    """Up once for the session (another session on this checkout waits its turn), down at the end."""
    require_lab()
    layout = layout_of(inventory)
    # Two test sessions on one checkout would share (and tear down) the same lab: take turns.
    session = STATE_ROOT / "locks" / f"{layout.lab_id}.test-session.lock"
    with file_lock(session, "another test session using this lab", timeout=SESSION_WAIT):
        try:
            up(layout, ensure_packages=True, progress=_quiet)
            yield SeedLab(inventory, layout)
        finally:
            # STACKWRIGHT_KEEP_LAB=1 keeps the hosts for a developer to inspect (never in CI).
            if os.environ.get("STACKWRIGHT_KEEP_LAB") != "1" or os.environ.get("CI") == "true":
                final = layout_of(inventory)  # tests may have grown the inventory (compute2)
                down(final, progress=_quiet)
                left = leftovers(final)
                assert not left, f"lab down left these behind: {left}"
                if not other_labs(final.dir):  # the last lab: this machine is as before `lab up`
                    assert not MACHINE_STATE.exists(), MACHINE_STATE.read_text()
                    assert INCLUDE_LINE not in (SSH_CONFIG.read_text() if SSH_CONFIG.exists() else "")


def _fresh_copy(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob("*.yaml"):
        if stale.name != "passwords.yaml":
            stale.unlink()
    target.write_text(text)


# The Epoxy cloud has every role (DESIGN §9): the seed's nodes and a storage node (Ceph, one OSD on a
# file the lab makes) behind Cinder, Glance and Nova; on .60 (compute2 takes .54 when a test adds it).
# The lab's hosts share this machine's disk, often under the 30% free below which Ceph's monitors
# warn: the monitor's node warns at 5% instead (a node override, so tests may add cluster-wide ones).
LAB_STORAGE_NODE = (
    "  storage1:\n"
    "    roles: [storage]\n"
    "    management: 10.10.10.60\n"
    "    osd_devices: [/srv/ceph/osd0.img]\n"
    "    overrides: {/etc/ceph/ceph.conf: {global: {mon_data_avail_warn: 5}}}\n"
)


def epoxy_lab_inventory() -> str:
    """examples/seed.yaml with the storage node after its nodes (tests append more)."""
    return SEED.read_text() + LAB_STORAGE_NODE


@pytest.fixture(scope="session")
def seed_lab() -> Iterator[SeedLab]:
    require_lab()
    _fresh_copy(TEST_INVENTORY, epoxy_lab_inventory())
    yield from _session_lab(TEST_INVENTORY)


@pytest.fixture(scope="session")
def zed_lab() -> Iterator[SeedLab]:
    require_lab()
    text = ZED_PACKAGE_CACHE + SEED_ZED.read_text()  # on top: nodes stay last, tests append to them
    for old, new in ZED_ADDRESSES:
        text = text.replace(old, new)
    _fresh_copy(ZED_INVENTORY, text)
    yield from _session_lab(ZED_INVENTORY)


@dataclass(frozen=True)
class Converged:
    """How the session's Epoxy cloud came to be: `apply --yes` on the bare hosts, SIGKILLed while
    the controller's nova db sync ran (the other hosts mid-way too), then the same plain
    `apply --yes --json` to the end (`report`)."""

    cut: Any  # tests.lab.interrupt.Interrupted
    report: dict[str, Any]
    killed_after_s: float
    resumed_s: float


@pytest.fixture(scope="session")
def epoxy_converge(seed_lab: SeedLab) -> Converged:
    from tests.lab.cli import stackwright
    from tests.lab.interrupt import Point, interrupted_apply

    start = time.monotonic()
    cut = interrupted_apply(
        seed_lab,
        [],
        Point("controller", "run: Nova database schemas", "process", running="nova-manage db sync"),
    )
    killed_after = time.monotonic() - start
    start = time.monotonic()
    proc = stackwright("apply", str(seed_lab.inventory), "--yes", "--json")
    resumed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr[-4000:]
    return Converged(cut, json.loads(proc.stdout), killed_after, resumed)


@pytest.fixture(scope="session")
def epoxy_cloud(seed_lab: SeedLab, epoxy_converge: Converged, request: pytest.FixtureRequest) -> SeedLab:
    """The seed lab converged into the Epoxy cloud (once per session). When the session also runs
    the Zed tests, the Zed cloud starts converging now, in the background: the Epoxy tests that
    follow mostly wait (doctor's breaks and repairs), and the Zed apply uses that time."""
    assert epoxy_converge.report["ok"], epoxy_converge.report
    if any("zed_cloud" in getattr(item, "fixturenames", ()) for item in request.session.items):
        start_zed_converge(request.getfixturevalue("zed_lab"))
    return seed_lab


@dataclass
class BackgroundApply:
    """An `apply --yes --json` running in a thread; `result()` waits for it (bounded)."""

    inventory: Path
    started: float = 0.0
    proc: subprocess.CompletedProcess[str] | None = None
    seconds: float = 0.0
    error: BaseException | None = None
    thread: threading.Thread | None = None

    def run(self) -> None:
        from tests.lab.cli import stackwright

        self.started = time.monotonic()
        try:
            self.proc = stackwright("apply", str(self.inventory), "--yes", "--json", timeout=3600)
        except BaseException as exc:  # handed to whoever asks for the result
            self.error = exc
        self.seconds = time.monotonic() - self.started

    def result(self, timeout: float = 3700) -> subprocess.CompletedProcess[str]:
        assert self.thread is not None
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"apply of {self.inventory} still running after {timeout:.0f} s"
        if self.error is not None:
            raise self.error
        assert self.proc is not None
        return self.proc


ZED_CONVERGE: dict[str, BackgroundApply] = {}


def start_zed_converge(lab: SeedLab) -> BackgroundApply:
    """The Zed lab's apply from bare, started once (in the background) for the session."""
    job = ZED_CONVERGE.get("zed")
    if job is None:
        job = BackgroundApply(lab.inventory)
        job.thread = threading.Thread(target=job.run, name="zed-apply", daemon=True)
        job.thread.start()
        ZED_CONVERGE["zed"] = job
    return job
