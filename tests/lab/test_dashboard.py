"""The dashboard and the VM console on the session's Epoxy cloud, in Debian's chromium.

`verify --ui --keep` logs into Horizon as the smoke user, finds the smoke server ACTIVE and reads the
guest's lease line off its noVNC console (tesseract). Then the same browser check, run against the
kept server, must fail and name the cause when nova-novncproxy is stopped and when the compute
node's VNC address is wrong; each test puts back what it broke (the address through `apply`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stackwright.checks.doctor.console import novnc_url
from stackwright.cloud import identity_v3
from stackwright.dashboard import dashboard_url
from stackwright.inventory import load_inventory
from stackwright.secrets import generate_password
from stackwright.smoke.browser import UiReport, check_console
from stackwright.smoke.image import MARK
from stackwright.smoke.run import SERVER, USER, cleanup
from stackwright.tls import client_ca
from tests.lab.cli import stackwright
from tests.lab.cloudkit import admin, apply_json
from tests.lab.conftest import SeedLab
from tests.lab.figures import record

pytestmark = [pytest.mark.lab, pytest.mark.cloud]
NOVA_CONF = "/etc/nova/nova.conf"


@pytest.fixture(scope="module")
def kept_smoke(epoxy_cloud: SeedLab) -> Iterator[dict[str, Any]]:
    """`verify --ui --keep`: its JSON; the smoke resources stay for the failure tests."""
    proc = stackwright(
        "verify", str(epoxy_cloud.inventory), "--ui", "--no-volumes", "--keep", "--json", timeout=1800
    )
    try:
        yield {"rc": proc.returncode, "stderr": proc.stderr, **json.loads(proc.stdout or "{}")}
    finally:
        assert cleanup(admin(epoxy_cloud)) == []


def browser_check(lab: SeedLab, smoke: dict[str, Any], out_dir: Path) -> UiReport:
    """The browser check against the kept server, logged in with a password set for the test."""
    conn = admin(lab)
    password = generate_password()
    identity = identity_v3(conn)
    user = identity.find_user(USER, domain_id="default", ignore_missing=False)
    identity.update_user(user, password=password)
    loaded = load_inventory(lab.inventory)
    inventory = loaded.model
    marker = f"{MARK} lease {smoke['smoke']['lease']}"
    trust = (loaded.tls.spki_sha256 if loaded.tls else None, client_ca(inventory, loaded.path))
    return check_console(
        dashboard_url(inventory),
        USER,
        password,
        smoke["smoke"]["server_id"],
        SERVER,
        marker,
        out_dir,
        console_timeout=60,
        trust=trust,
    )


def test_verify_ui_logs_in_finds_the_vm_and_reads_its_console(
    epoxy_cloud: SeedLab, kept_smoke: dict[str, Any]
) -> None:
    assert kept_smoke["rc"] == 0, kept_smoke["stderr"][-4000:]
    smoke = kept_smoke["smoke"]
    assert smoke["ok"] and smoke["lease"] == smoke["fixed_ip"] and smoke["uuid"] == smoke["server_id"]
    ui = smoke["ui"]
    assert ui["ok"], ui
    assert f"{MARK}lease{smoke['lease']}" in "".join(ui["console_text"].split())
    shots = [Path(p) for p in ui["screenshots"]]
    assert [p.name for p in shots] == ["login.png", "instances.png", "console.png"]
    for shot in shots:
        assert shot.read_bytes().startswith(b"\x89PNG"), shot
        assert shot.stat().st_mode & 0o077 == 0, shot
        assert f"screenshot: {shot}" in kept_smoke["stderr"]
    record("dashboard", "login → console text visible (s)", round(ui["console_s"], 1))
    record("dashboard", "login (s)", round(ui["login_s"], 1))
    # the dashboard's settings hold SECRET_KEY: the horizon group reads them, nobody else
    settings = "/etc/openstack-dashboard/local_settings.py"
    assert epoxy_cloud.check("controller", f"stat -c '%a %U %G' {settings}").strip() == "640 root horizon"


def test_browser_check_names_a_stopped_console_proxy(
    epoxy_cloud: SeedLab, kept_smoke: dict[str, Any], tmp_path: Path
) -> None:
    assert kept_smoke["rc"] == 0, kept_smoke["stderr"][-2000:]
    epoxy_cloud.check("controller", "systemctl stop nova-novncproxy")
    try:
        report = browser_check(epoxy_cloud, kept_smoke, tmp_path)
    finally:
        epoxy_cloud.check("controller", "systemctl start nova-novncproxy")
    assert not report.ok
    assert report.error is not None and "did not load" in report.error, report
    assert novnc_url(load_inventory(epoxy_cloud.inventory).model) in report.error
    assert report.hint is not None and "nova-novncproxy" in report.hint
    # the proxy back, the same check passes: the failure was the proxy, nothing else
    assert browser_check(epoxy_cloud, kept_smoke, tmp_path / "after").ok


def test_browser_check_names_a_wrong_vnc_address(
    epoxy_cloud: SeedLab, kept_smoke: dict[str, Any], tmp_path: Path
) -> None:
    assert kept_smoke["rc"] == 0, kept_smoke["stderr"][-2000:]
    host = kept_smoke["smoke"]["compute_host"]
    # the controller's own address: the proxy's connection is refused there at once (another
    # node's firewall would drop it instead, and the proxy would wait out its connect timeout)
    epoxy_cloud.check(
        host,
        f"sed -i 's/^server_proxyclient_address = .*/server_proxyclient_address = 10.10.10.51/' {NOVA_CONF}"
        " && systemctl restart nova-compute",
    )
    try:
        report = browser_check(epoxy_cloud, kept_smoke, tmp_path)
        doctor = stackwright("doctor", str(epoxy_cloud.inventory), "--json", "--host", host)
    finally:
        repaired = apply_json(epoxy_cloud, "--no-upgrade", "--limit", host)
    assert not report.ok
    assert (
        report.error is not None and "did not show" in report.error and "connection is closed" in report.error
    )
    assert report.hint is not None and "server_proxyclient_address" in report.hint
    rows = [c for c in json.loads(doctor.stdout)["checks"] if c["id"] == "vnc-address"]
    assert [r["status"] for r in rows] == ["fail"], rows
    assert f"10.10.10.51 is not an address of {host}" in rows[0]["cause"]
    assert repaired["hosts"][host]["ok"], repaired
