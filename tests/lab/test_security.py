"""Secrets and trust on the session's Epoxy cloud; runs after test_resilience.py.

A password rotated in passwords.yaml reaches the cloud (verify passes) while neither its old nor
its new value shows in `plan --live`, an interactive or a `--yes` apply, `doctor`, the run logs or
a world-readable file on any host, and old copies of secret files stop at three per file. A host
whose SSH key changed is refused in one line naming both fingerprints while the others converge;
a host no known_hosts knows is refused until `stackwright trust` recorded it.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from stackwright.engine.hostkeys import fingerprint, known_hosts_path
from stackwright.lab.processes import nspawn_pid
from stackwright.lab.supervisor import children
from tests.lab.cli import cli_argv, stackwright
from tests.lab.cloudkit import apply_json, verify_json, world_readable_leaks
from tests.lab.conftest import SeedLab, layout_of

pytestmark = [pytest.mark.lab, pytest.mark.cloud]
ROTATED = "nova_password"
NOVA_CONF_BACKUPS = "/var/lib/stackwright/backups/etc/nova/nova.conf"
LOGS = Path.home() / ".local" / "state" / "stackwright"


def passwords_file(lab: SeedLab) -> Path:
    return lab.inventory.parent / "passwords.yaml"


def rotate(lab: SeedLab, name: str) -> tuple[str, str]:
    """A new value for one password in passwords.yaml; returns (old, new)."""
    path = passwords_file(lab)
    values = yaml.safe_load(path.read_text())
    old, new = values[name], f"Rotated-{secrets.token_hex(12)}"
    values[name] = new
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return old, new


def assert_hidden(texts: list[str], *values: str) -> None:
    for value in values:
        shown = [text[max(0, text.find(value) - 80) :][:160] for text in texts if value in text]
        assert shown == [], f"a password shows: {shown}"


def interactive_apply(lab: SeedLab) -> subprocess.CompletedProcess[str]:
    """`apply` without --yes at a terminal: the live plan, then "apply these changes?" answered y
    (stdin is a pseudo-terminal: a pipe is refused without --yes)."""
    import os
    import pty

    argv = cli_argv("apply", str(lab.inventory))
    argv += ["--no-upgrade"]
    controller, terminal = pty.openpty()
    try:
        os.write(controller, b"y\n")
        return subprocess.run(argv, stdin=terminal, capture_output=True, text=True, timeout=3600, check=False)
    finally:
        os.close(terminal)
        os.close(controller)


def test_rotated_password_reaches_the_cloud_and_shows_nowhere(epoxy_cloud: SeedLab) -> None:
    started = time.time()
    # Old copies of nova.conf from "earlier runs": after the rotation only the newest three remain.
    stamps = " ".join(f"{NOVA_CONF_BACKUPS}.2020010{d}T000000" for d in range(1, 6))
    epoxy_cloud.check("controller", f"mkdir -p $(dirname {NOVA_CONF_BACKUPS}) && touch {stamps}")
    old, new = rotate(epoxy_cloud, ROTATED)

    plan = stackwright("plan", str(epoxy_cloud.inventory), "--live")
    plan_json = stackwright("plan", str(epoxy_cloud.inventory), "--live", "--json")
    assert plan.returncode == 0 and plan_json.returncode == 0, plan.stderr[-2000:]
    assert "secret file changes:" in plan.stdout  # nova.conf's password lines, counted, not shown
    changed = json.loads(plan_json.stdout)["hosts"]
    assert any(c["path"] == "/etc/nova/nova.conf" for c in changed["controller"]["changes"])

    interactive = interactive_apply(epoxy_cloud)
    assert interactive.returncode == 0, interactive.stdout[-3000:] + interactive.stderr[-2000:]
    assert "apply these changes?" in interactive.stdout + interactive.stderr
    assert "secret file changes:" in interactive.stdout

    # A second rotation, applied with --yes: the first new value is now an old one.
    older, newest = new, rotate(epoxy_cloud, ROTATED)[1]
    report = apply_json(epoxy_cloud, "--no-upgrade")
    assert report["ok"], report
    doctor = stackwright("doctor", str(epoxy_cloud.inventory), "--json", timeout=900)
    assert doctor.returncode == 0, doctor.stdout[-3000:]
    verify_json(epoxy_cloud, "--wait", "180")

    logs = [p for p in LOGS.glob("*.log") if p.stat().st_mtime >= started]
    assert logs and stat.S_IMODE(LOGS.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in logs)
    texts = [plan.stdout, plan.stderr, plan_json.stdout, interactive.stdout, interactive.stderr]
    texts += [json.dumps(report), doctor.stdout, doctor.stderr, *(p.read_text() for p in logs)]
    assert_hidden(texts, old, older, newest)
    assert world_readable_leaks(epoxy_cloud, [old, older, newest]) == {}
    backups = epoxy_cloud.check("controller", f"ls -1 {NOVA_CONF_BACKUPS}.*").split()
    assert len(backups) == 3, backups  # the two of this test, and the newest before them
    assert not any(f".2020010{d}T" in b for b in backups for d in range(1, 5)), backups
    real = [b for b in backups if ".2020" not in b]
    assert epoxy_cloud.check("controller", "stat -c %a " + " ".join(real)).split() == ["640"] * len(real)


def host_key_files(lab: SeedLab, host: str) -> Path:
    return layout_of(lab.inventory).host(host).root / "etc" / "ssh"


def in_host(lab: SeedLab, host: str, command: list[str]) -> None:
    """Run a command in the host's mount namespace from this machine, not over SSH: its SSH key is
    what changes (as test_resilience.full_filesystem does)."""
    nspawn = nspawn_pid(layout_of(lab.inventory).host(host))
    assert nspawn is not None
    init = children(nspawn)[0]
    # every namespace (-a): systemctl must see the host's own systemd as PID 1
    subprocess.run(["nsenter", "-t", str(init), "-a", "--", *command], check=True, timeout=60)


@contextlib.contextmanager
def new_host_key(lab: SeedLab, host: str) -> Iterator[tuple[str, str]]:
    """The host gets a new ed25519 key (as a reinstall would); yields (old, new) fingerprints.
    Put back afterwards: the lab's own ssh (StrictHostKeyChecking yes) and later tests need the old."""
    keys = host_key_files(lab, host)
    saved = Path(tempfile.mkdtemp(prefix="sw-hostkey-"))
    for name in ("ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"):
        shutil.copy2(keys / name, saved / name)
    old = fingerprint((keys / "ssh_host_ed25519_key.pub").read_text().split()[1])
    generated = saved / "new"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(generated)], check=True)
    try:
        shutil.copyfile(generated, keys / "ssh_host_ed25519_key")
        shutil.copyfile(generated.with_suffix(".pub"), keys / "ssh_host_ed25519_key.pub")
        in_host(lab, host, ["systemctl", "restart", "ssh"])
        yield old, fingerprint(generated.with_suffix(".pub").read_text().split()[1])
    finally:
        for name in ("ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"):
            shutil.copyfile(saved / name, keys / name)
        in_host(lab, host, ["systemctl", "restart", "ssh"])
        shutil.rmtree(saved)


def test_a_changed_host_key_is_refused_in_one_line_and_the_others_converge(epoxy_cloud: SeedLab) -> None:
    recorded = known_hosts_path(epoxy_cloud.inventory).read_text()
    with new_host_key(epoxy_cloud, "compute1") as (old, new):
        proc = stackwright("apply", str(epoxy_cloud.inventory), "--yes", "--json", "--no-upgrade")
        assert proc.returncode == 1, proc.stderr[-3000:]
        hosts = json.loads(proc.stdout)["hosts"]
        error = hosts["compute1"]["error"]["output"]
        assert error.startswith("host key of compute1 (10.10.10.53) changed:") and "\n" not in error
        assert old in error and new in error
        assert all(r["ok"] and r["changed"] == 0 for h, r in hosts.items() if h != "compute1"), hosts
        assert "Traceback" not in proc.stderr
        # the recorded key is left as it was: trust never changes behind the user's back
        assert known_hosts_path(epoxy_cloud.inventory).read_text() == recorded
    report = apply_json(epoxy_cloud, "--no-upgrade", "--limit", "compute1")
    assert report["hosts"]["compute1"]["ok"]


def test_a_host_no_known_hosts_knows_is_refused_until_trusted(epoxy_cloud: SeedLab, tmp_path: Path) -> None:
    """The same cloud seen from another directory (no known_hosts there): refused; `trust`
    records the keys the hosts really have (read from their roots); then it connects."""
    inventory = tmp_path / "seed.yaml"
    shutil.copy(epoxy_cloud.inventory, inventory)
    shutil.copy(passwords_file(epoxy_cloud), tmp_path / "passwords.yaml")
    refused = stackwright("plan", str(inventory), "--live", "--host", "compute1")
    assert refused.returncode == 2, refused.stdout[-2000:]
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, refused.stderr
    (line,) = lines
    assert "no known host key for compute1 (10.10.10.53)" in line
    assert f"stackwright trust {inventory}" in line

    trusted = stackwright("trust", str(inventory), "--limit", "compute1", "--yes")
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    real = fingerprint(
        (host_key_files(epoxy_cloud, "compute1") / "ssh_host_ed25519_key.pub").read_text().split()[1]
    )
    assert real in trusted.stdout
    plan = stackwright("plan", str(inventory), "--live", "--host", "compute1")
    assert plan.returncode == 0, plan.stdout[-2000:] + plan.stderr[-2000:]

    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(inventory, other / "seed.yaml")
    shutil.copy(tmp_path / "passwords.yaml", other / "passwords.yaml")
    once = stackwright(
        "plan", str(other / "seed.yaml"), "--live", "--host", "compute1", "--accept-new-host-keys"
    )
    assert once.returncode == 0, once.stderr[-2000:]
    assert f"accepted the new host key of compute1 (10.10.10.53): ED25519 {real}" in once.stderr
