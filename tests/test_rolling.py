"""apply --rolling's pure parts: the order of the nodes, the API outage, "reported since"."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from stackwright.inventory import load_inventory
from stackwright.rolling import longest_outage, reported_since, rolling_order

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


def test_reported_since_reads_the_apis_timestamps_as_utc() -> None:
    since = dt.datetime(2026, 12, 3, 21, 0, 0, tzinfo=dt.UTC)
    assert reported_since("2026-12-03T21:00:05.000000", since)  # nova: naive, UTC
    assert reported_since("2026-12-03 21:00:05", since)  # neutron: a space
    assert not reported_since("2026-12-03T20:59:59Z", since)
    assert reported_since("2026-12-03T22:00:01+01:00", since)
    assert not reported_since(None, since) and not reported_since("", since)
