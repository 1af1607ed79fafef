"""The day-0 external network apply makes on the controller: the floating-IP pool, the default
external network and the default subnet pool projects' auto-allocated networks come from."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from stackwright.inventory import load_inventory
from stackwright.planner import plan_cluster
from stackwright.releases.modern.neutron import EXTERNAL_JSON, EXTERNAL_SCRIPT
from stackwright.secrets import SECRET_NAMES
from stackwright.steps import File

SEED = Path(__file__).resolve().parent.parent / "examples" / "seed.yaml"
PASSWORDS = {n: "x" * 16 for n in SECRET_NAMES}


def controller_files(path: Path) -> dict[str, File]:
    plan = plan_cluster(load_inventory(path), PASSWORDS)
    return {s.path: s for s in plan.hosts["controller"].steps if isinstance(s, File)}


def test_the_external_network_is_the_default_with_a_default_subnet_pool(tmp_path: Path) -> None:
    (tmp_path / "cloud.yaml").write_text(SEED.read_text())
    files = controller_files(tmp_path / "cloud.yaml")
    spec = json.loads(files[EXTERNAL_JSON].content)
    assert spec["pool"] == {"start": "192.168.100.129", "end": "192.168.100.254"}
    assert spec["subnetpool"] == {"name": "default-ipv4", "prefix": "10.128.0.0/16", "prefixlen": 26}
    script = files[EXTERNAL_SCRIPT].content
    ast.parse(script)
    assert "is_default=True" in script and "create_subnet_pool" in script


def test_the_subnet_pool_avoids_the_inventorys_networks(tmp_path: Path) -> None:
    text = SEED.read_text().replace("10.10.10.", "10.128.10.")
    (tmp_path / "cloud.yaml").write_text(text)
    spec = json.loads(controller_files(tmp_path / "cloud.yaml")[EXTERNAL_JSON].content)
    assert spec["subnetpool"]["prefix"] == "172.29.0.0/16"
