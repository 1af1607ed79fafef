"""doctor's maintenance checks on given API data (the lab test injects the real faults)."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

from stackwright import certs
from stackwright.checks.doctor.base import CloudData, Context, HostData, InstanceState
from stackwright.checks.doctor.gather import LIBVIRT_SERVER_CERT, host_script
from stackwright.checks.doctor.maintenance import compute_disabled, migration_cert, migration_path, stuck_rows
from stackwright.inventory import load_inventory
from stackwright.planner import plan_cluster
from stackwright.secrets import SECRET_NAMES
from stackwright.tls import store_for

ROOT = Path(__file__).resolve().parent.parent
NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)


def context(cloud: CloudData) -> Context:
    loaded = load_inventory(ROOT / "examples" / "seed.yaml")
    plan = plan_cluster(loaded, {name: "x" * 16 for name in SECRET_NAMES})
    return Context(loaded.model, plan, list(loaded.model.nodes), {}, cloud)


def test_a_drained_node_is_named_with_its_reason_and_the_command_that_puts_it_back() -> None:
    rows = compute_disabled(context(CloudData(disabled={"compute1": "stackwright drain: maintenance"})))
    (row,) = rows
    assert (row.id, row.host, row.status) == ("compute-disabled", "compute1", "warn")
    assert "stackwright drain: maintenance" in row.cause and "undrain FILE compute1" in row.fix
    assert [r.status for r in compute_disabled(context(CloudData()))] == ["ok"]
    # nova's own disable while libvirt is away (it enables the node again itself): not a warning
    auto = compute_disabled(context(CloudData(disabled={"compute1": "AUTO: Connection to libvirt lost: 1"})))
    assert [(r.status, r.host) for r in auto] == [("ok", "compute1")]


def test_instances_stuck_migrating_long_or_in_error_fail_with_nova_s_fault() -> None:
    old = (NOW - dt.timedelta(hours=1)).isoformat()
    recent = (NOW - dt.timedelta(minutes=2)).isoformat().replace("+00:00", "Z")
    cloud = CloudData(
        instances=[
            InstanceState("1", "stuck", "compute1", "MIGRATING", old),
            InstanceState("2", "moving", "compute1", "MIGRATING", recent),
            InstanceState("3", "broken", "compute1", "ERROR", old, "No valid host was found."),
        ]
    )
    rows = stuck_rows(context(cloud), NOW)
    assert [(r.status, r.host) for r in rows] == [("fail", "compute1"), ("fail", "compute1")]
    assert "stuck" in rows[0].cause and "migration abort" in rows[0].fix
    assert "No valid host was found." in rows[1].cause
    assert [r.status for r in stuck_rows(context(CloudData()), NOW)] == ["ok"]


def two_computes(tmp_path: Path) -> Context:
    text = (ROOT / "examples" / "seed.yaml").read_text()
    text += "  compute2:\n    roles: [compute]\n    management: 10.10.10.54\n    data: 10.20.20.54\n"
    (tmp_path / "cloud.yaml").write_text(text)
    loaded = load_inventory(tmp_path / "cloud.yaml")
    plan = plan_cluster(loaded, {name: "x" * 16 for name in SECRET_NAMES})
    return Context(loaded.model, plan, list(loaded.model.nodes), {}, CloudData())


def test_migration_script_probes_each_peer_s_listener_and_nova_s_ssh(tmp_path: Path) -> None:
    ctx = two_computes(tmp_path)
    script = host_script(ctx.inventory, "compute1", ctx.plan.hosts["compute1"])
    section = script.split("@@sw:migration")[1].split("@@sw:")[0]
    assert "for ip in 10.10.10.54; do" in section and "/dev/tcp/$ip/16514" in section
    assert 'virsh -c "qemu+tls://$ip/system" hostname' in section  # a TLS connection, as a migration's
    assert "base64 -w0 /etc/pki/libvirt/servercert.pem" in section
    assert "runuser -u nova -- ssh -o BatchMode=yes" in section
    # one compute node: nothing to migrate to, no probe
    alone = context(CloudData())
    assert "@@sw:migration" not in host_script(alone.inventory, "compute1", alone.plan.hosts["compute1"])


def test_a_peer_s_unreachable_listener_or_refused_key_fails_naming_the_peer(tmp_path: Path) -> None:
    ctx = two_computes(tmp_path)
    ctx.data["compute1"] = HostData("compute1", {"migration": ["peer=10.10.10.54 no yes"]})
    ctx.data["compute2"] = HostData("compute2", {"migration": ["peer=10.10.10.53 yes no"]})
    rows = {r.host: r for r in migration_path(ctx)}
    assert rows["compute1"].status == "fail"
    assert "compute2's libvirtd listener 10.10.10.54:16514 does not answer" in rows["compute1"].cause
    ctx.data["compute1"] = HostData("compute1", {"migration": ["peer=10.10.10.54 tls yes"]})
    (row,) = [r for r in migration_path(ctx) if r.host == "compute1"]
    assert "compute2's libvirtd (10.10.10.54:16514) refuses the TLS connection" in row.cause, row
    assert (
        rows["compute2"].status == "fail"
        and "nova's SSH to compute1 (10.10.10.53) fails" in rows["compute2"].cause
    )
    ctx.data["compute1"] = HostData("compute1", {"migration": ["peer=10.10.10.54 yes yes"]})
    ctx.data["compute2"] = HostData("compute2", {})  # the probe printed nothing: not a pass
    rows = {r.host: r for r in migration_path(ctx)}
    assert rows["compute1"].status == "ok" and rows["compute2"].status == "fail"


def _cert_line(pem: str) -> str:
    return "cert=" + base64.b64encode(pem.encode()).decode()


def test_a_migration_certificate_near_expiry_missing_or_not_the_cas_fails(tmp_path: Path) -> None:
    ctx = two_computes(tmp_path)
    planned = {h: ctx.plan.hosts[h].files()[LIBVIRT_SERVER_CERT].content for h in ("compute1", "compute2")}
    ctx.data["compute1"] = HostData("compute1", {"migration": [_cert_line(planned["compute1"])]})
    ctx.data["compute2"] = HostData("compute2", {"migration": ["cert="]})
    rows = {r.host: r for r in migration_cert(ctx)}
    assert rows["compute1"].status == "ok" and "days left" in rows["compute1"].cause
    assert rows["compute2"].status == "fail" and "servercert.pem: missing" in rows["compute2"].cause
    # compute1's certificate served by compute2: issued by the CA, but not for compute2
    ctx.data["compute2"] = HostData("compute2", {"migration": [_cert_line(planned["compute1"])]})
    (row,) = [r for r in migration_cert(ctx) if r.host == "compute2"]
    assert row.status == "fail" and "not the certificate the cloud's CA issued for compute2" in row.cause
    # one issued by the same CA that ends in 10 days
    store = store_for(tmp_path / "cloud.yaml")
    soon = certs.issue(
        store.authority(),
        "libvirt-compute2",
        ["10.10.10.54", "compute2"],
        certs.now() - dt.timedelta(days=387),
        client=True,
    )
    ctx.data["compute2"] = HostData("compute2", {"migration": [_cert_line(soon.cert_pem)]})
    (row,) = [r for r in migration_cert(ctx) if r.host == "compute2"]
    assert row.status == "fail" and "expires in 10 days" in row.cause, row.cause
