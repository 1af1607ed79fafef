"""Cross-host steps of `apply --limit`: which hosts outside the limit get them."""

from __future__ import annotations

from pathlib import Path

from stackwright.deploy import files_for_deployed
from stackwright.inventory import load_inventory
from stackwright.planner import plan_cluster
from stackwright.releases.modern.nova_ssh import NOVA_KNOWN_HOSTS
from stackwright.secrets import SECRET_NAMES
from stackwright.steps import Command, File

ROOT = Path(__file__).resolve().parent.parent


def test_compute_peers_learn_a_joining_node_s_host_key_only_where_nova_is_deployed(tmp_path: Path) -> None:
    text = (ROOT / "examples" / "seed.yaml").read_text()
    for n in (2, 3):
        text += f"  compute{n}:\n    roles: [compute]\n"
        text += f"    management: 10.10.10.{52 + n}\n    data: 10.20.20.{52 + n}\n"
    (tmp_path / "cloud.yaml").write_text(text)
    plan = plan_cluster(load_inventory(tmp_path / "cloud.yaml"), {n: "x" * 16 for n in SECRET_NAMES})
    peers = {runner: (waits, steps) for runner, waits, steps in plan.after if runner.startswith("compute")}
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
