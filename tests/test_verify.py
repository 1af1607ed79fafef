"""Offline tests of verify's pure checks: the smiley-face table, services, agents, hypervisors,
endpoints (with a fake GET: nothing is contacted)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from stackwright.checks.verify import (
    AgentRow,
    EndpointRow,
    HypervisorRow,
    ServiceRow,
    VerifyLine,
    all_ok,
    check_agents,
    check_endpoints,
    check_hypervisors,
    check_nova_services,
    endpoint_target,
    probe_url,
    show_verify,
    smiley_table,
)
from stackwright.inventory import Inventory, load_inventory
from tests.conftest import SEED

STAMP = "2026-11-24T10:00:00.000000"


@pytest.fixture
def seed() -> Inventory:
    return load_inventory(SEED).model


def healthy_services() -> list[ServiceRow]:
    return [
        ServiceRow("nova-conductor", "controller", updated_at=STAMP, id="1"),
        ServiceRow("nova-scheduler", "controller", updated_at=STAMP, id="2"),
        ServiceRow("nova-compute", "compute1.lab", zone="nova", updated_at=STAMP, id="3"),
    ]


def healthy_agents() -> list[AgentRow]:
    return [
        AgentRow("Open vSwitch agent", "network", True),
        AgentRow("L3 agent", "network", True),
        AgentRow("DHCP agent", "network", True),
        AgentRow("Metadata agent", "network", True),
        AgentRow("Open vSwitch agent", "compute1", True),
    ]


def test_smiley_table_like_nova_manage() -> None:
    rows = [*healthy_services(), ServiceRow("nova-compute", "compute2", zone="nova", state="down", id="9")]
    table = smiley_table(rows)
    assert table[0].split() == ["Binary", "Host", "Zone", "Status", "State", "Updated_At"]
    assert table[1].split() == ["nova-compute", "compute1.lab", "nova", "enabled", ":-)", STAMP]
    assert table[2].split()[:5] == ["nova-compute", "compute2", "nova", "enabled", "XXX"]
    assert [line.split()[0] for line in table[1:]] == [
        "nova-compute",
        "nova-compute",
        "nova-conductor",
        "nova-scheduler",
    ]
    # nova-manage's fixed columns: State starts at the same offset on every line
    offsets = {
        line.index(word) for line, word in zip(table, ["State", ":-)", "XXX", ":-)", ":-)"], strict=True)
    }
    assert len(offsets) == 1


def test_services_healthy(seed: Inventory) -> None:
    lines = check_nova_services(healthy_services(), seed)
    assert all_ok(lines)
    assert [line.id for line in lines] == [
        "nova:nova-conductor@controller",
        "nova:nova-scheduler@controller",
        "nova:nova-compute@compute1",
    ]
    assert all(line.service is not None for line in lines)


def test_services_down_disabled_missing_and_leftover(seed: Inventory) -> None:
    rows = [
        ServiceRow("nova-conductor", "controller", state="down"),
        ServiceRow("nova-scheduler", "controller", status="disabled"),
        ServiceRow("nova-compute", "oldnode", state="down", id="42"),
    ]
    lines = {line.id: line for line in check_nova_services(rows, seed)}
    down = lines["nova:nova-conductor@controller"]
    assert not down.ok and "XXX" in down.message and "systemctl status nova-conductor" in (down.hint or "")
    disabled = lines["nova:nova-scheduler@controller"]
    assert not disabled.ok and "--enable controller nova-scheduler" in (disabled.hint or "")
    missing = lines["nova:nova-compute@compute1"]
    assert not missing.ok and "not registered" in missing.message and "discover_hosts" in (missing.hint or "")
    leftover = lines["nova:nova-compute@oldnode"]
    assert not leftover.ok and "compute service delete 42" in (leftover.hint or "")


def test_agents(seed: Inventory) -> None:
    assert all_ok(check_agents(healthy_agents(), seed))
    rows = [a for a in healthy_agents() if a.agent_type != "L3 agent"]
    rows = [AgentRow(a.agent_type, a.host, a.host != "compute1", a.admin_up) for a in rows]
    rows.append(AgentRow("DHCP agent", "compute1", False, id="7"))
    lines = {line.id: line for line in check_agents(rows, seed)}
    assert not lines["agent:L3 agent@network"].ok
    assert "neutron-l3-agent" in (lines["agent:L3 agent@network"].hint or "")
    ovs = lines["agent:Open vSwitch agent@compute1"]
    assert not ovs.ok and "dead" in ovs.message and "datapath_type=netdev" in (ovs.hint or "")
    assert "agent delete 7" in (lines["agent:DHCP agent@compute1"].hint or "")
    admin_down = check_agents([AgentRow("Open vSwitch agent", "compute1", True, False, id="5")], seed)
    line = next(x for x in admin_down if x.id == "agent:Open vSwitch agent@compute1")
    assert not line.ok and "--enable 5" in (line.hint or "")


def test_agent_on_the_wrong_host(seed: Inventory) -> None:
    rows = [*healthy_agents()[:2], AgentRow("DHCP agent", "controller", True), *healthy_agents()[3:]]
    line = next(x for x in check_agents(rows, seed) if x.id == "agent:DHCP agent@network")
    assert not line.ok and "it runs on controller" in line.message


def test_hypervisors(seed: Inventory) -> None:
    assert all_ok(check_hypervisors([HypervisorRow("compute1.lab", "up", "enabled")], seed))
    assert all_ok(check_hypervisors([HypervisorRow("compute1")], seed))  # older API: no state
    missing = check_hypervisors([HypervisorRow("other")], seed)
    assert not missing[0].ok and "discover_hosts" in (missing[0].hint or "")
    down = check_hypervisors([HypervisorRow("compute1", "down", "enabled")], seed)
    assert not down[0].ok


def catalog(host_public: str = "192.168.100.51", host_internal: str = "10.10.10.51") -> list[EndpointRow]:
    ports = {
        "identity": "5000/v3/",
        "compute": "8774/v2.1",
        "network": "9696",
        "image": "9292",
        "placement": "8778",
    }
    rows = []
    for service, port in ports.items():
        rows.append(EndpointRow(service, "public", f"http://{host_public}:{port}", "RegionOne"))
        rows.append(EndpointRow(service, "internal", f"http://{host_internal}:{port}", "RegionOne"))
        rows.append(EndpointRow(service, "admin", f"http://{host_internal}:{port}", "RegionOne"))
    return rows


def test_endpoints_answering(seed: Inventory) -> None:
    asked: list[str] = []

    def get(url: str) -> tuple[int | None, str]:
        asked.append(url)
        return (300 if "5000" in url else 401 if "9696" in url else 200), ""

    lines = check_endpoints(catalog(), seed, get)
    assert all_ok(lines) and len(lines) == 15 and len(asked) == 15


def test_endpoints_failing_missing_and_foreign(seed: Inventory) -> None:
    asked: list[str] = []

    def get(url: str) -> tuple[int | None, str]:
        asked.append(url)
        if ":9292" in url:
            return None, "no answer ([Errno 111] Connection refused)"
        return (503 if ":8778" in url else 200), ""

    rows = [r for r in catalog() if not (r.service_type == "compute" and r.interface == "public")]
    rows.append(EndpointRow("compute", "public", "http://203.0.113.9:8774/v2.1/$(project_id)s", "RegionOne"))
    lines = {
        (line.id, line.ok, line.message.split(":")[0]): line for line in check_endpoints(rows, seed, get)
    }
    failing = [line for line in lines.values() if not line.ok]
    messages = " | ".join(line.message for line in failing)
    assert "Connection refused" in messages and "HTTP 503" in messages
    foreign = next(line for line in failing if "203.0.113.9" in line.message)
    assert "not contacted" in foreign.message
    assert not any("203.0.113.9" in url for url in asked), "a non-inventory address must not be contacted"
    image = next(line for line in failing if "Connection refused" in line.message)
    assert "glance-api" in (image.hint or "")
    only_internal = [r for r in catalog() if r.interface != "public"]
    missing = [
        line for line in check_endpoints(only_internal, seed, get) if "no public endpoint" in line.message
    ]
    assert len(missing) == 5


def test_endpoint_helpers(seed: Inventory) -> None:
    assert probe_url("http://10.10.10.51:8774/v2.1/%(tenant_id)s") == "http://10.10.10.51:8774/v2.1/"
    assert endpoint_target("http://10.10.10.51:5000/v3", seed) is None
    assert endpoint_target("http://controller:5000/v3", seed) is None
    assert endpoint_target("http://192.0.2.1:5000/v3", seed) is not None
    assert endpoint_target("http://cloud.invalid:5000/v3", seed) is not None


def test_show_verify_prints_table_failures_and_hints() -> None:
    lines = [
        VerifyLine("nova:nova-conductor@controller", True, "ok", service=healthy_services()[0]),
        VerifyLine(
            "nova:nova-compute@compute1",
            False,
            "nova-compute on compute1: XXX down, enabled",
            "on compute1: `systemctl status nova-compute`",
            service=ServiceRow("nova-compute", "compute1", state="down"),
        ),
        VerifyLine("api:image", True, "image API answers (12 ms)"),
    ]
    out = io.StringIO()
    show_verify(lines, Console(file=out, width=160, color_system=None))
    text = out.getvalue()
    assert "Binary" in text and ":-)" in text and "XXX" in text
    assert "hint: on compute1: `systemctl status nova-compute`" in text
    assert "image API answers" in text and "1 check(s) failed" in text
