"""drain's pure parts: the room check, and the one-line refusals before anything is contacted."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from typer.testing import CliRunner

from stackwright.cli import app
from stackwright.maintenance import unplaceable

ROOT = Path(__file__).resolve().parent.parent


def server(name: str, vcpus: int, ram: int, disk: int = 1) -> SimpleNamespace:
    return SimpleNamespace(name=name, flavor={"vcpus": vcpus, "ram": ram, "disk": disk})


def test_instances_fit_first_fit_largest_memory_first() -> None:
    free = {
        "compute2": {"VCPU": 4.0, "MEMORY_MB": 3000.0, "DISK_GB": 10.0},
        "compute3": {"VCPU": 4.0, "MEMORY_MB": 1024.0, "DISK_GB": 10.0},
    }
    servers = [server("small", 1, 512), server("big", 2, 2048), server("mid", 1, 1024)]
    assert unplaceable(servers, free) == []  # big and small on compute2, mid on compute3
    assert unplaceable([*servers, server("huge", 1, 4096)], free) == ["huge"]
    assert unplaceable([server("cpu", 8, 64)], free) == ["cpu"]
    assert unplaceable([server("any", 1, 64)], {}) == ["any"]


def test_drain_refuses_a_host_that_is_not_a_compute_node() -> None:
    result = CliRunner().invoke(app, ["drain", str(ROOT / "examples" / "seed.yaml"), "network"])
    assert result.exit_code == 2
    assert "'network' is not a compute node" in result.output and "compute1" in result.output
    assert "Traceback" not in result.output


def test_evacuate_and_undrain_refuse_a_host_that_is_not_a_compute_node() -> None:
    for command in ("evacuate", "undrain"):
        result = CliRunner().invoke(app, [command, str(ROOT / "examples" / "seed.yaml"), "controller"])
        assert result.exit_code == 2, (command, result.output)
        assert "'controller' is not a compute node" in result.output
        assert "Traceback" not in result.output
