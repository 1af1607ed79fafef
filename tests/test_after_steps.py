"""Cross-host steps of `apply --limit`: which hosts outside the limit get them."""

from __future__ import annotations

from pathlib import Path

from stackwright.deploy import files_for_deployed
from stackwright.inventory import load_inventory
from stackwright.planner import plan_cluster
from stackwright.releases.modern.nftables import RULESET
from stackwright.releases.modern.nftables import UNIT as FIREWALL_UNIT
from stackwright.releases.modern.nova_ssh import NOVA_KNOWN_HOSTS
from stackwright.secrets import SECRET_NAMES
from stackwright.steps import Command, File, Service

ROOT = Path(__file__).resolve().parent.parent


def test_compute_peers_learn_a_joining_node_s_host_key_only_where_nova_is_deployed(tmp_path: Path) -> None:
    text = (ROOT / "examples" / "seed.yaml").read_text()
    for n in (2, 3):
        text += f"  compute{n}:\n    roles: [compute]\n"
        text += f"    management: 10.10.10.{52 + n}\n    data: 10.20.20.{52 + n}\n"
    (tmp_path / "cloud.yaml").write_text(text)
    plan = plan_cluster(load_inventory(tmp_path / "cloud.yaml"), {n: "x" * 16 for n in SECRET_NAMES})
    peers = {
        runner: (waits, steps)
        for runner, waits, steps in plan.after
        if runner.startswith("compute") and isinstance(steps[0], File) and steps[0].path == NOVA_KNOWN_HOSTS
    }
    assert set(peers) == {"compute1", "compute2", "compute3"}
    waits, steps = peers["compute3"]
    assert set(waits) == {"compute1", "compute2"}
    (known,) = steps
    assert isinstance(known, File) and known.path == NOVA_KNOWN_HOSTS and known.owner == "nova"
    # compute3 still bare (no nova user) while compute2 joins: nothing is written there
    assert files_for_deployed(steps, lambda f: False) == ()
    assert files_for_deployed(steps, lambda f: True) == steps
    other = Command("x", ("true",))
    assert files_for_deployed((other, known), lambda f: False) == (other,)


def test_a_node_outside_the_run_reloads_its_firewall_only_where_it_has_one(tmp_path: Path) -> None:
    """compute2 joins under `--limit compute2`: compute1 and the network node reload their
    firewalls with its addresses; a peer that has no firewall file yet (bare, or deployed before
    the firewall) is left to its own apply, and its firewall service is not restarted."""
    text = (ROOT / "examples" / "seed.yaml").read_text()
    text += "  compute2:\n    roles: [compute]\n    management: 10.10.10.54\n    data: 10.20.20.54\n"
    (tmp_path / "cloud.yaml").write_text(text)
    plan = plan_cluster(load_inventory(tmp_path / "cloud.yaml"), {n: "x" * 16 for n in SECRET_NAMES})
    firewalls = {
        runner: (waits, steps)
        for runner, waits, steps in plan.after
        if isinstance(steps[0], File) and steps[0].path == RULESET
    }
    waits, steps = firewalls["network"]
    assert "compute2" in waits
    ruleset, unit, loader = steps
    assert isinstance(unit, File) and unit.path == FIREWALL_UNIT
    assert isinstance(ruleset, File) and "10.20.20.54/32" in ruleset.content
    assert isinstance(loader, Service) and loader.restart_when == (RULESET, FIREWALL_UNIT)
    assert files_for_deployed(steps, lambda f: True) == steps
    assert files_for_deployed(steps, lambda f: False) == ()
    assert "10.10.10.54/32" in firewalls["compute1"][1][0].content  # type: ignore[union-attr]


def test_the_controller_converges_first_when_hosts_queue_for_slots() -> None:
    """`apply --parallel N`: every other host waits for the controller's services (AwaitHost);
    queued behind them it would never start."""
    from stackwright.deploy import converge_order

    assert converge_order("controller", ["compute1", "network", "controller", "compute2"]) == [
        "controller",
        "compute1",
        "network",
        "compute2",
    ]


def test_a_controller_that_computes_waits_for_its_own_registration_before_discover_hosts() -> None:
    """An all-in-one node ran no discover_hosts at all (it waits for no other host), and a
    controller beside other compute nodes was mapped before its own nova-compute registered."""
    from stackwright.deploy import involved_hosts
    from stackwright.inventory import load_inventory
    from stackwright.planner import plan_cluster
    from stackwright.secrets import SECRET_NAMES
    from tests.conftest import AIO, SEED

    pw = {name: "x" * 16 for name in SECRET_NAMES}
    ((runner, waits_for, steps),) = plan_cluster(load_inventory(AIO), pw).after
    assert (runner, waits_for) == ("aio", ())
    assert involved_hosts(runner, waits_for, steps, ["aio"]) == {"aio"}
    seed = plan_cluster(load_inventory(SEED), pw).after
    runner, waits_for, steps = next(a for a in seed if a[0] == "controller")
    assert involved_hosts(runner, waits_for, steps, ["controller", "network", "compute1"]) == {"compute1"}
    assert involved_hosts(runner, waits_for, steps, ["controller"]) == set()  # nothing to discover
