"""Property test: generated malformed inventories all exit 2 with one-line errors, no traceback."""

from __future__ import annotations

import copy
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from stackwright.cli import app
from stackwright.secrets import SECRET_NAMES

runner = CliRunner()
LINE = re.compile(r"^error: \S+?(:\d+)?: .+ — .+$")
SEED: dict[str, Any] = {
    "release": "zed",
    "networks": {
        "management": {"cidr": "10.10.10.0/24"},
        "data": {"cidr": "10.20.20.0/24"},
        "external": {"cidr": "192.168.100.0/24", "gateway": "192.168.100.1"},
    },
    "tenant_network_type": "gre",
    "nodes": {
        "controller": {"roles": ["controller"], "management": "10.10.10.51", "external": "192.168.100.51"},
        "network": {
            "roles": ["network"],
            "management": "10.10.10.52",
            "data": "10.20.20.52",
            "external": "192.168.100.52",
        },
        "compute1": {"roles": ["compute"], "management": "10.10.10.53", "data": "10.20.20.53"},
    },
}
NODE_NAMES = list(SEED["nodes"])
FIELDS = ["roles", "management", "data", "external", "interfaces", "virt_type", "ssh", "overrides"]
junk_value = st.one_of(
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.text(max_size=20),
)
junk_key = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=15).filter(
    lambda k: (
        k
        not in {
            "release",
            "networks",
            "nodes",
            "tenant_network_type",
            "virt_type",
            "region",
            "overrides",
            *FIELDS,
            "cidr",
            "gateway",
            "management",
            "data",
            "external",
        }
    )
)
bad_ip = st.one_of(
    st.ip_addresses(v=4)
    .map(str)
    .filter(lambda a: not a.startswith(("10.10.10.", "10.20.20.", "192.168.100."))),
    st.text(alphabet="0123456789.", min_size=1, max_size=16).filter(lambda t: t.count(".") != 3),
    st.just("10.10.10.256"),
    st.just("::1"),
)


@st.composite
def malformed(draw: st.DrawFn) -> str:
    inv = copy.deepcopy(SEED)
    node = draw(st.sampled_from(NODE_NAMES))
    kind = draw(
        st.sampled_from(
            [
                "unknown_top_key",
                "unknown_node_key",
                "unknown_network_key",
                "address_outside",
                "bad_address",
                "duplicate_address",
                "bad_hostname",
                "no_controller",
                "two_controllers",
                "drop_data",
                "unknown_release",
                "junk_value",
                "drop_required",
                "bad_role",
                "bad_override_file",
                "bad_override_section",
                "bad_cidr",
                "syntax",
                "not_mapping",
                "bad_interface",
            ]
        )
    )
    match kind:
        case "unknown_top_key":
            inv[draw(junk_key)] = draw(junk_value)
        case "unknown_node_key":
            inv["nodes"][node][draw(junk_key)] = draw(junk_value)
        case "unknown_network_key":
            inv["networks"]["management"][draw(junk_key)] = draw(junk_value)
        case "address_outside":
            inv["nodes"][node]["management"] = draw(
                bad_ip.filter(lambda a: a.count(".") == 3 and "256" not in a)
            )
        case "bad_address":
            inv["nodes"][node]["management"] = draw(bad_ip)
        case "duplicate_address":
            other = draw(st.sampled_from([n for n in NODE_NAMES if n != node]))
            inv["nodes"][node]["management"] = inv["nodes"][other]["management"]
        case "bad_hostname":
            name = draw(
                st.one_of(
                    st.text(alphabet="ABCXYZ_ .!", min_size=1, max_size=10),
                    st.just("a" * 64),
                    st.just("-lead"),
                    st.just("trail-"),
                )
            )
            inv["nodes"][name] = inv["nodes"].pop(node)
        case "no_controller":
            inv["nodes"]["controller"]["roles"] = ["compute"]
            inv["nodes"]["controller"]["data"] = "10.20.20.51"
        case "two_controllers":
            inv["nodes"]["compute1"]["roles"].append("controller")
        case "drop_data":
            del inv["nodes"][draw(st.sampled_from(["network", "compute1"]))]["data"]
        case "unknown_release":
            inv["release"] = draw(
                st.text(min_size=1, max_size=10).filter(lambda r: r not in ("zed", "grizzly"))
            )
        case "junk_value":
            field = draw(st.sampled_from(["roles", "management", "interfaces", "ssh", "overrides"]))
            inv["nodes"][node][field] = draw(st.one_of(st.integers(), st.booleans(), st.just([[]])))
        case "drop_required":
            path = draw(
                st.sampled_from(
                    [
                        ("networks",),
                        ("nodes",),
                        ("networks", "management"),
                        ("nodes", node, "roles"),
                        ("nodes", node, "management"),
                    ]
                )
            )
            target = inv
            for part in path[:-1]:
                target = target[part]
            del target[path[-1]]
        case "bad_role":
            inv["nodes"][node]["roles"] = [
                draw(
                    st.text(min_size=1, max_size=8).filter(
                        lambda r: r not in ("controller", "network", "compute")
                    )
                )
            ]
        case "bad_override_file":
            inv["overrides"] = {"/etc/" + draw(junk_key) + ".conf": {"DEFAULT": {"debug": True}}}
        case "bad_override_section":
            inv["nodes"]["compute1"]["overrides"] = {"/etc/chrony/chrony.conf": {draw(junk_key): {"x": 1}}}
        case "bad_cidr":
            inv["networks"]["data"]["cidr"] = draw(
                st.sampled_from(["10.20.20.1/24", "10.20.20.0/33", "banana", "10.20.20.0", "10.10.0.0/16"])
            )
        case "syntax":
            text = yaml.safe_dump(inv, sort_keys=False)
            lines = text.splitlines()
            at = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            lines[at] = lines[at] + draw(st.sampled_from([": [", " {", "\t- x:", ": : :", " ]", " '"]))
            return "\n".join(lines) + "\n"
        case "not_mapping":
            return draw(st.sampled_from(["- a\n- b\n", "just text\n", "42\n", "[]\n"]))
        case "bad_interface":
            inv["nodes"][node]["interfaces"] = {
                "management": draw(st.sampled_from(["", "a name with spaces", "x" * 16, "eth0/1"]))
            }
    return yaml.safe_dump(inv, sort_keys=False)


_tmp = Path(tempfile.mkdtemp(prefix="stackwright-fuzz-"))
_passwords = _tmp / "passwords.yaml"
_passwords.write_text(yaml.safe_dump({n: f"Pw{n.replace('_', '')}1234" for n in SECRET_NAMES}))
_passwords.chmod(0o600)


@settings(max_examples=250, deadline=None)
@given(malformed())
def test_malformed_inventory_exits_2_with_one_line_errors(text: str) -> None:
    inventory = _tmp / "inventory.yaml"
    inventory.write_text(text)
    result = runner.invoke(app, ["validate", str(inventory), "--passwords", str(_passwords)])
    assert result.exception is None or isinstance(result.exception, SystemExit), (text, result.exception)
    assert result.exit_code == 2, (text, result.stdout)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, text
    assert "Traceback" not in result.stderr
    for line in lines:
        assert LINE.match(line), (text, line)
    assert len(lines) == 1, (text, lines)
