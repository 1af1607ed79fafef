"""apply --rolling's pure parts: the order of the nodes, the API outage, "reported since"."""

from __future__ import annotations

from pathlib import Path

from stackwright.inventory import load_inventory
from stackwright.rolling import longest_outage, not_reported, rolling_order

ROOT = Path(__file__).resolve().parent.parent


def test_controller_then_network_then_compute_nodes_one_by_one(tmp_path: Path) -> None:
    text = (ROOT / "examples" / "seed.yaml").read_text()
    text += "  compute2:\n    roles: [compute]\n    management: 10.10.10.54\n    data: 10.20.20.54\n"
    (tmp_path / "cloud.yaml").write_text(text)
    assert rolling_order(load_inventory(tmp_path / "cloud.yaml").model) == [
        "controller",
        "network",
        "compute1",
        "compute2",
    ]


def test_longest_outage_is_the_longest_run_of_unanswered_requests() -> None:
    assert longest_outage([(0.0, True), (0.5, True)]) == 0.0
    samples = [(0.0, True), (0.5, False), (1.0, False), (1.5, True), (2.0, False), (2.5, True)]
    assert longest_outage(samples) == 1.0  # 0.5 → 1.5
    assert longest_outage([(0.0, True), (0.5, False), (3.0, False)]) == 2.5  # never back: to the last
    assert longest_outage([(1.0, False)]) == 0.0


def test_a_node_is_healthy_once_everything_reported_again_after_its_update() -> None:
    after = {"nova-compute": "2026-12-03T21:00:05.000000", "Open vSwitch agent": "2026-12-03 21:00:01"}
    again = {"nova-compute": "2026-12-03T21:00:15.000000", "Open vSwitch agent": "2026-12-03 21:00:31"}
    assert not_reported(again, after) is None
    assert not_reported({**again, "nova-compute": after["nova-compute"]}, after) == (
        "not reported since the update: nova-compute"
    )
    # down (None) right after the update, or down now: not healthy
    assert not_reported(again, {**after, "nova-compute": None}) is None
    assert not_reported({**again, "Open vSwitch agent": None}, after) == (
        "not reported since the update: Open vSwitch agent"
    )
    # a node its update did not change: nothing restarted, alive now is enough
    assert not_reported(after, after, changed=False) is None
    assert not_reported({**after, "nova-compute": None}, after, changed=False) == "not up: nova-compute"


def test_storage_nodes_roll_after_the_network_nodes_and_before_the_compute_nodes() -> None:
    model = load_inventory(ROOT / "examples" / "storage.yaml").model
    assert rolling_order(model) == ["controller", "network", "storage1", "compute1"]
